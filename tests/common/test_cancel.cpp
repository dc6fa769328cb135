// cancel_token: copies share one flag; a child stops with its parent but stopping it leaves the parent be.
#include <gtest/gtest.h>

#include "common/cancel.h"

namespace mm {
namespace {

TEST(cancel_token, a_child_stops_with_its_parent_and_alone) {
    cancel_token parent;
    const cancel_token copy = parent;
    cancel_token a = parent.child(), b = parent.child();
    const cancel_token a_copy = a;
    EXPECT_FALSE(a.stopped());
    a.cancel();
    EXPECT_TRUE(a.stopped());
    EXPECT_TRUE(a_copy.stopped()) << "copies share the flag";
    EXPECT_FALSE(b.stopped()) << "a sibling is not stopped";
    EXPECT_FALSE(parent.stopped()) << "nor the parent";
    copy.cancel();
    EXPECT_TRUE(parent.stopped());
    EXPECT_TRUE(b.stopped()) << "the parent stops its children";
}

}  // namespace
}  // namespace mm

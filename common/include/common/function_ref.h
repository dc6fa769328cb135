// A non-owning reference to a callable: what parallel_for takes, so dispatch never allocates.
#pragma once

#include <type_traits>
#include <utility>

namespace mm {

template <class Sig> class function_ref;

template <class R, class... Args>
class function_ref<R(Args...)> {
public:
    function_ref() = default;  // empty, only to be assigned over: calling it is a bug
    template <class F, class = std::enable_if_t<!std::is_same_v<std::decay_t<F>, function_ref>>>
    function_ref(F&& f)  // NOLINT: implicit on purpose, like std::function
        : obj_(const_cast<void*>(static_cast<const void*>(&f))),
          call_([](void* o, Args... a) -> R { return (*static_cast<std::remove_reference_t<F>*>(o))(std::forward<Args>(a)...); }) {}
    R operator()(Args... a) const { return call_(obj_, std::forward<Args>(a)...); }

private:
    void* obj_ = nullptr;
    R (*call_)(void*, Args...) = nullptr;
};

}  // namespace mm

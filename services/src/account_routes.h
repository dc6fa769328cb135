// The meter's own routes: key management for the admin key (/v1/admin/keys, /v1/admin/users/{user}), and
// for every key its budget (/v1/me) and usage (/v1/usage). They call the ledger, so they run on the meter's
// workers. The meter must outlive the server.
#pragma once

#include <vector>

#include "meter.h"
#include "services/router.h"

namespace mm::services {

std::vector<route> account_routes(meter& m);

}  // namespace mm::services

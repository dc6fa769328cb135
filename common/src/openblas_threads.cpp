#include "openblas_threads.h"

#include <cblas.h>

namespace mm {
void openblas_threads_set(int n) { openblas_set_num_threads(n); }
int openblas_threads_get() { return openblas_get_num_threads(); }
}  // namespace mm

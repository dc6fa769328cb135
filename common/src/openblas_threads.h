// OpenBLAS's own thread count, behind one function so only this file knows the OpenBLAS-specific symbol.
#pragma once

namespace mm {
void openblas_threads_set(int n);
int openblas_threads_get();
}  // namespace mm

// Package torchx exposes the few libtorch calls pltune needs that gotch
// compiles but does not wrap in Go: seeding libtorch's generators and its
// thread count.
package torchx

/*
#include <stdint.h>
void at_manual_seed(int64_t);
void at_set_num_threads(int);
int at_get_num_threads();
*/
import "C"

import (
	_ "github.com/sugarme/gotch/libtch" // defines the C functions above
)

// ManualSeed seeds libtorch's default generators (CPU and CUDA), as
// torch.manual_seed does.
func ManualSeed(seed int64) { C.at_manual_seed(C.int64_t(seed)) }

// SetNumThreads sets libtorch's intra-op thread count.
func SetNumThreads(n int) { C.at_set_num_threads(C.int(n)) }

// NumThreads is libtorch's intra-op thread count.
func NumThreads() int { return int(C.at_get_num_threads()) }

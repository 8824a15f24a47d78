// Package dist joins a pltune process to a data-parallel group on
// libtorch's own distributed engine, c10d: Gloo on CPU, NCCL on CUDA. It is
// the layer under PyTorch's DDP, so a pltune program is started the way
// PyTorch users start jobs (`torchrun --no-python`, or `pltune launch`) and
// finds its place in the group from the same environment variables:
// MASTER_ADDR, MASTER_PORT, RANK, WORLD_SIZE, LOCAL_RANK.
//
// A *Group implements train.Communicator, so passing it as
// TrainerConfig.Comm makes a training run data parallel.
//
// Collectives must be called in the same order on every rank. Every
// collective waits at most the group's timeout; a rank that dies makes the
// others' next collective fail at once (its connections close, with Gloo),
// and a rank that hangs makes it fail when the timeout runs out. A rank
// told to stop (Init's ctx done, as when the launcher stops the group after
// one rank failed) whose collective stays blocked for Options.StopGrace
// exits. After a failed collective the group is broken: every later call
// returns the same error, and the process should exit non-zero.
//
// The C side is pltune's c10d shim, compiled into the patched gotch by
// pltune's setup (internal/buildchain); Backends tells what that build has.
package dist

/*
#include <stdint.h>
#include <stdlib.h>
int pltune_c10d_backends();
char *pltune_c10d_new_group(const char *backend, const char *addr, int port, int rank, int size,
                            int device, int64_t timeout_ms, int agent_store, const char *prefix,
                            const char *ifname, void **out);
char *pltune_c10d_allreduce(void *g, void **tensors, int n, int average, int64_t bucket_bytes);
char *pltune_c10d_broadcast(void *g, void **tensors, int n, int root, int64_t bucket_bytes);
char *pltune_c10d_barrier(void *g);
void pltune_c10d_free_group(void *g, int broken);
*/
import "C"

import (
	"context"
	"errors"
	"fmt"
	"math"
	"os"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
	"unsafe"

	"github.com/sugarme/gotch"
	_ "github.com/sugarme/gotch/libtch" // compiles the c10d shim declared above
	"github.com/sugarme/gotch/ts"
)

// Defaults.
const (
	DefaultTimeout     = 5 * time.Minute
	DefaultBucketBytes = 25 << 20 // PyTorch DDP's bucket_cap_mb
)

// TimeoutEnv overrides DefaultTimeout when Options.Timeout is zero: a Go
// duration ("90s", "10m") or a number of seconds.
const TimeoutEnv = "PLTUNE_DIST_TIMEOUT"

// Options configures Init. The zero value picks the backend, reads the
// timeout from TimeoutEnv (else DefaultTimeout) and uses DDP's bucket size.
type Options struct {
	// Backend is "gloo", "nccl", or "" for NCCL when this build has it and
	// CUDA is available, else Gloo.
	Backend string
	// Timeout bounds the rendezvous and every collective.
	Timeout time.Duration
	// BucketBytes is the size of the flat buffers that tensors are packed
	// into for one collective each.
	BucketBytes int64
	// StopGrace bounds how long a collective may stay blocked once Init's
	// ctx is done (the process was told to stop: pltune launch and
	// torchrun send every rank SIGTERM when one fails): a peer that failed
	// never reaches the collective, and NCCL would wait the whole Timeout,
	// so the process then exits with status 1, as PyTorch's NCCL watchdog
	// ends it. A collective that began before the stop counts from the
	// stop, so a stopping run's last collectives (agreeing on the step,
	// a ZeRO checkpoint's shards) have the grace to finish. Zero:
	// DefaultStopGrace; negative: wait for the Timeout.
	StopGrace time.Duration
}

// DefaultStopGrace is Options.StopGrace's default: well under the 30
// seconds pltune launch and torchrun wait before they kill a stopped rank.
const DefaultStopGrace = 10 * time.Second

// Env is a process's place in the group, as torchrun describes it.
type Env struct {
	MasterAddr string
	MasterPort int
	Rank       int
	WorldSize  int
	LocalRank  int
	// AgentStore is set when torchrun's agent already serves the store at
	// MASTER_ADDR:MASTER_PORT (TORCHELASTIC_USE_AGENT_STORE=True): then no
	// rank hosts it, and keys live under the restart attempt's prefix.
	AgentStore   bool
	RestartCount int
	// GlooIfname names the interfaces Gloo binds to (GLOO_SOCKET_IFNAME).
	GlooIfname string
}

// ErrNotLaunched means the environment does not describe a group: the
// program was not started by `pltune launch` or torchrun.
var ErrNotLaunched = errors.New("dist: WORLD_SIZE is not set: start the program with `pltune launch` or `torchrun --no-python`")

// Launched reports whether the process was started as part of a group.
func Launched() bool { return os.Getenv("WORLD_SIZE") != "" }

// ReadEnv reads the torchrun variables through getenv (os.Getenv in
// practice). It returns ErrNotLaunched when WORLD_SIZE is unset.
func ReadEnv(getenv func(string) string) (Env, error) {
	if getenv("WORLD_SIZE") == "" {
		return Env{}, ErrNotLaunched
	}
	e := Env{MasterAddr: getenv("MASTER_ADDR"), GlooIfname: getenv("GLOO_SOCKET_IFNAME")}
	ints := []struct {
		name     string
		dst      *int
		min, max int
		def      string
	}{
		{"WORLD_SIZE", &e.WorldSize, 1, 1 << 20, ""},
		{"RANK", &e.Rank, 0, 1 << 20, ""},
		{"LOCAL_RANK", &e.LocalRank, 0, 1 << 20, "0"},
		{"MASTER_PORT", &e.MasterPort, 1, 65535, ""},
		{"TORCHELASTIC_RESTART_COUNT", &e.RestartCount, 0, 1 << 30, "0"},
	}
	for _, v := range ints {
		s := strings.TrimSpace(getenv(v.name))
		if s == "" {
			s = v.def
		}
		if s == "" {
			return Env{}, fmt.Errorf("dist: %s is not set (WORLD_SIZE is): the launcher must set MASTER_ADDR, MASTER_PORT, RANK and WORLD_SIZE", v.name)
		}
		n, err := strconv.Atoi(s)
		if err != nil || n < v.min || n > v.max {
			return Env{}, fmt.Errorf("dist: %s=%q: want an integer from %d to %d", v.name, s, v.min, v.max)
		}
		*v.dst = n
	}
	if e.Rank >= e.WorldSize {
		return Env{}, fmt.Errorf("dist: RANK=%d is outside WORLD_SIZE=%d (ranks are 0 to %d)", e.Rank, e.WorldSize, e.WorldSize-1)
	}
	if e.MasterAddr == "" {
		return Env{}, errors.New("dist: MASTER_ADDR is not set (WORLD_SIZE is): the launcher must set MASTER_ADDR, MASTER_PORT, RANK and WORLD_SIZE")
	}
	e.AgentStore = strings.EqualFold(getenv("TORCHELASTIC_USE_AGENT_STORE"), "true")
	return e, nil
}

// ParseTimeout reads a timeout as a Go duration ("90s") or a number of
// seconds ("90"); it must be positive.
func ParseTimeout(s string) (time.Duration, error) {
	s = strings.TrimSpace(s)
	d, err := time.ParseDuration(s)
	if err != nil {
		secs, ferr := strconv.ParseFloat(s, 64)
		if ferr != nil {
			return 0, fmt.Errorf("timeout %q: want a duration such as 90s or 10m, or a number of seconds", s)
		}
		if math.IsNaN(secs) || secs > (1<<62)/float64(time.Second) {
			return 0, fmt.Errorf("timeout %q: want a duration such as 90s or 10m, or a number of seconds", s)
		}
		d = time.Duration(secs * float64(time.Second))
	}
	if d <= 0 {
		return 0, fmt.Errorf("timeout %q: want a positive duration", s)
	}
	return d, nil
}

// Backends lists the backends this build of pltune has ("gloo", "nccl").
func Backends() []string {
	b := int(C.pltune_c10d_backends())
	var out []string
	if b&1 != 0 {
		out = append(out, "gloo")
	}
	if b&2 != 0 {
		out = append(out, "nccl")
	}
	return out
}

// Group is this process's membership of a data-parallel group. Its methods
// are safe for concurrent use, but collectives must be issued in the same
// order on every rank.
type Group struct {
	env     Env
	backend string
	timeout time.Duration
	bucket  int64

	mu     sync.Mutex
	g      unsafe.Pointer
	broken error

	// The stop watchdog (watch): when the collective in flight began
	// (UnixNano; 0: none), and closed when the group is.
	started atomic.Int64
	closed  chan struct{}
}

// Init joins the group the environment describes (see ReadEnv). It returns
// when every rank has joined, the timeout runs out, or ctx is done (the
// half-made group is then abandoned).
func Init(ctx context.Context, opts Options) (*Group, error) {
	env, err := ReadEnv(os.Getenv)
	if err != nil {
		return nil, err
	}
	return InitEnv(ctx, env, opts)
}

// InitEnv is Init with the group described by env instead of the
// environment variables.
func InitEnv(ctx context.Context, env Env, opts Options) (*Group, error) {
	if opts.Timeout == 0 {
		opts.Timeout = DefaultTimeout
		if s := os.Getenv(TimeoutEnv); s != "" {
			d, err := ParseTimeout(s)
			if err != nil {
				return nil, fmt.Errorf("dist: %s: %w", TimeoutEnv, err)
			}
			opts.Timeout = d
		}
	}
	if opts.Timeout < 0 {
		return nil, fmt.Errorf("dist: negative timeout %v", opts.Timeout)
	}
	if opts.BucketBytes <= 0 {
		opts.BucketBytes = DefaultBucketBytes
	}
	have := Backends()
	be := opts.Backend
	if be == "" {
		be = "gloo"
		if slices.Contains(have, "nccl") && gotch.CUDA.IsAvailable() {
			be = "nccl"
		}
	}
	if be != "gloo" && be != "nccl" {
		return nil, fmt.Errorf("dist: unknown backend %q; want gloo, nccl or empty (automatic)", be)
	}
	if !slices.Contains(have, be) {
		return nil, fmt.Errorf("dist: this build has no %s backend (it has: %s); pltune's setup enables a backend when the linked libtorch exports it and its headers are installed (Gloo on Debian: apt-get install libgloo-dev, then run the setup again)", be, listOrNone(have))
	}
	prefix := ""
	if env.AgentStore {
		// torchrun's agent shares its store; PyTorch's workers use this prefix.
		prefix = fmt.Sprintf("/worker/attempt_%d", env.RestartCount)
	}
	type result struct {
		g   unsafe.Pointer
		err error
	}
	done := make(chan result, 1)
	abandoned := make(chan struct{})
	go func() {
		cBackend, cAddr, cPrefix, cIf := C.CString(be), C.CString(env.MasterAddr), C.CString(prefix), C.CString(env.GlooIfname)
		defer func() {
			for _, p := range []*C.char{cBackend, cAddr, cPrefix, cIf} {
				C.free(unsafe.Pointer(p))
			}
		}()
		agent := 0
		if env.AgentStore {
			agent = 1
		}
		var g unsafe.Pointer
		cerr := C.pltune_c10d_new_group(cBackend, cAddr, C.int(env.MasterPort), C.int(env.Rank), C.int(env.WorldSize),
			C.int(env.LocalRank), C.int64_t(opts.Timeout.Milliseconds()), C.int(agent), cPrefix, cIf, &g)
		select {
		case <-abandoned:
			if cerr == nil {
				C.pltune_c10d_free_group(g, 1)
			}
			takeErr(cerr)
		default:
			done <- result{g, takeErr(cerr)}
		}
	}()
	select {
	case <-ctx.Done():
		close(abandoned)
		// The goroutine may have finished just now: free its group.
		select {
		case r := <-done:
			if r.err == nil {
				C.pltune_c10d_free_group(r.g, 1)
			}
		default:
		}
		return nil, fmt.Errorf("dist: joining the group at %s:%d as rank %d of %d: %w", env.MasterAddr, env.MasterPort, env.Rank, env.WorldSize, ctx.Err())
	case r := <-done:
		if r.err != nil {
			return nil, fmt.Errorf("dist: joining the %s group at %s:%d as rank %d of %d (timeout %v; did all ranks start, with the same MASTER_ADDR, MASTER_PORT and WORLD_SIZE?): %w", be, env.MasterAddr, env.MasterPort, env.Rank, env.WorldSize, opts.Timeout, r.err)
		}
		g := &Group{env: env, backend: be, timeout: opts.Timeout, bucket: opts.BucketBytes, g: r.g, closed: make(chan struct{})}
		if opts.StopGrace == 0 {
			opts.StopGrace = DefaultStopGrace
		}
		if opts.StopGrace > 0 {
			go g.watch(ctx, opts.StopGrace)
		}
		return g, nil
	}
}

// watch ends the process when, after ctx is done, a collective stays
// blocked for grace (Options.StopGrace).
func (g *Group) watch(ctx context.Context, grace time.Duration) {
	select {
	case <-ctx.Done():
	case <-g.closed:
		return
	}
	stopped := time.Now()
	tick := time.NewTicker(min(grace/10, 100*time.Millisecond))
	defer tick.Stop()
	for {
		select {
		case <-g.closed:
			return
		case <-tick.C:
		}
		s := g.started.Load()
		if s == 0 {
			continue
		}
		since := time.Unix(0, s)
		if since.Before(stopped) {
			since = stopped
		}
		if time.Since(since) >= grace {
			fmt.Fprintf(os.Stderr, "dist: rank %d of %d: told to stop, and a collective is still blocked %v later: a peer rank has failed or stopped; exiting\n", g.env.Rank, g.env.WorldSize, grace)
			os.Exit(1)
		}
	}
}

func listOrNone(xs []string) string {
	if len(xs) == 0 {
		return "none"
	}
	return strings.Join(xs, ", ")
}

// takeErr turns the shim's malloc'd message into an error and frees it.
func takeErr(c *C.char) error {
	if c == nil {
		return nil
	}
	msg := C.GoString(c)
	C.free(unsafe.Pointer(c))
	return errors.New(cleanMessage(msg))
}

// cleanMessage keeps what a c10::Error says and drops the C++ backtrace
// that follows it.
func cleanMessage(msg string) string {
	if i := strings.Index(msg, "\nException raised from"); i >= 0 {
		msg = msg[:i]
	}
	return strings.TrimSpace(msg)
}

// Rank is this process's rank, from 0 to Size()-1.
func (g *Group) Rank() int { return g.env.Rank }

// Size is the number of processes in the group.
func (g *Group) Size() int { return g.env.WorldSize }

// LocalRank is this process's rank on its machine: the CUDA device to use.
func (g *Group) LocalRank() int { return g.env.LocalRank }

// Backend is "gloo" or "nccl".
func (g *Group) Backend() string { return g.backend }

// Timeout is the longest a collective waits.
func (g *Group) Timeout() time.Duration { return g.timeout }

// Op is a reduction.
type Op int

// Reductions.
const (
	Sum Op = iota
	Average
)

func (o Op) String() string {
	if o == Average {
		return "average"
	}
	return "sum"
}

// AllReduceSum replaces each tensor by its sum over all ranks.
func (g *Group) AllReduceSum(tensors []*ts.Tensor) error { return g.AllReduce(tensors, Sum) }

// AllReduce replaces each tensor by its sum or mean over all ranks. Small
// tensors are packed into buckets of about Options.BucketBytes (by dtype
// and device), one collective per bucket; tensors of InPlaceBytes or more
// are reduced where they are, one collective each, since copying them into
// a bucket costs more than a collective's fixed overhead. All collectives
// of a call are in flight together. Every rank must pass tensors of the
// same shapes and dtypes in the same order.
func (g *Group) AllReduce(tensors []*ts.Tensor, op Op) error {
	avg := 0
	if op == Average {
		avg = 1
	}
	return g.bucketed(fmt.Sprintf("all-reduce (%s) of %d tensors", op, len(tensors)), tensors, func(arr *unsafe.Pointer, n int, bucket int64) *C.char {
		return C.pltune_c10d_allreduce(g.g, arr, C.int(n), C.int(avg), C.int64_t(bucket))
	})
}

// InPlaceBytes is the size from which a tensor travels where it is instead
// of being packed into a bucket.
const InPlaceBytes = 256 << 10

// Broadcast replaces each tensor by root's, packed as AllReduce packs them.
func (g *Group) Broadcast(tensors []*ts.Tensor, root int) error {
	return g.bucketed(fmt.Sprintf("broadcast of %d tensors from rank %d", len(tensors), root), tensors, func(arr *unsafe.Pointer, n int, bucket int64) *C.char {
		return C.pltune_c10d_broadcast(g.g, arr, C.int(n), C.int(root), C.int64_t(bucket))
	})
}

// bucketed runs call over the large tensors, each alone, then over the
// small ones in buckets.
func (g *Group) bucketed(what string, tensors []*ts.Tensor, call func(arr *unsafe.Pointer, n int, bucket int64) *C.char) error {
	limit := min(InPlaceBytes, g.bucket)
	var large, small []*ts.Tensor
	for i, t := range tensors {
		if t == nil {
			return fmt.Errorf("dist: %s: tensor %d is nil", what, i)
		}
		if int64(t.Numel()*t.DType().Size()) >= limit {
			large = append(large, t)
		} else {
			small = append(small, t)
		}
	}
	return g.collective(what, func() error {
		// A bucket size of one byte gives each tensor a collective of its own.
		for _, part := range []struct {
			ts     []*ts.Tensor
			bucket int64
		}{{large, 1}, {small, g.bucket}} {
			if len(part.ts) == 0 {
				continue
			}
			err := withCArray(part.ts, func(arr *unsafe.Pointer) *C.char { return call(arr, len(part.ts), part.bucket) })
			if err != nil {
				return err
			}
		}
		return nil
	})
}

// Barrier returns when every rank has called it.
func (g *Group) Barrier() error {
	return g.collective("barrier", func() error { return takeErr(C.pltune_c10d_barrier(g.g)) })
}

// collective runs fn under the group's lock; an error breaks the group.
func (g *Group) collective(what string, fn func() error) error {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.g == nil {
		return fmt.Errorf("dist: %s: the group is closed", what)
	}
	if g.broken != nil {
		return g.broken
	}
	g.started.Store(time.Now().UnixNano())
	err := fn()
	g.started.Store(0)
	if err != nil {
		g.broken = fmt.Errorf("dist: rank %d of %d: %s failed (a peer rank exited, lost its connection, or did not reach it within %v): %w", g.env.Rank, g.env.WorldSize, what, g.timeout, err)
		return g.broken
	}
	return nil
}

// withCArray calls fn with a C array of the tensors' C pointers (C memory,
// so it needs no pinning) and turns its result into an error.
func withCArray(tensors []*ts.Tensor, fn func(*unsafe.Pointer) *C.char) error {
	mem := C.malloc(C.size_t(max(len(tensors), 1)) * C.size_t(unsafe.Sizeof(unsafe.Pointer(nil))))
	defer C.free(mem)
	ptrs := unsafe.Slice((*unsafe.Pointer)(mem), len(tensors))
	for i, t := range tensors {
		ptrs[i] = t.Ctensor()
	}
	err := takeErr(fn((*unsafe.Pointer)(mem)))
	runtime.KeepAlive(tensors)
	return err
}

// Close leaves the group. After a failed collective it does not wait for
// the backend's threads, which may still be blocked on a dead peer.
func (g *Group) Close() error {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.g == nil {
		return nil
	}
	broken := 0
	if g.broken != nil {
		broken = 1
	}
	C.pltune_c10d_free_group(g.g, C.int(broken))
	g.g = nil
	close(g.closed)
	return nil
}

// pltune's C interface over libtorch's c10d (TCPStore, ProcessGroupGloo,
// ProcessGroupNCCL). pltune's setup copies this file into the patched
// gotch's libtch folder, so it is compiled with libtch's cgo flags against
// whichever libtorch the setup found; package train/dist calls it.
//
// Every function catches every C++ exception and returns its message as a
// malloc'd string (NULL on success), which the caller frees: a failing
// collective must become a Go error, never an abort.
//
// USE_C10D_GLOO and USE_C10D_NCCL are defined by the setup when the linked
// libtorch exports the backend and its headers are present; the c10d
// headers themselves guard on the same macros.

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <chrono>
#include <exception>
#include <memory>
#include <sstream>
#include <string>
#include <vector>

#include <ATen/ATen.h>
#include <ATen/core/grad_mode.h>
#include <torch/csrc/distributed/c10d/PrefixStore.hpp>
#include <torch/csrc/distributed/c10d/TCPStore.hpp>
#include <torch/csrc/distributed/c10d/Types.hpp>
#include <torch/csrc/distributed/c10d/Work.hpp>
#ifdef USE_C10D_GLOO
#include <torch/csrc/distributed/c10d/ProcessGroupGloo.hpp>
#endif
#ifdef USE_C10D_NCCL
#include <torch/csrc/distributed/c10d/ProcessGroupNCCL.hpp>
#endif

namespace {

char *dup_err(const std::string &s) { return strdup(s.c_str()); }

enum Backend { kGloo = 1, kNCCL = 2 };

// Group is a process group with what the collectives need besides it. The
// concrete group type is kept (not the base class) because the base class
// differs between libtorch versions (ProcessGroup in 1.x, Backend in 2.x)
// while the collective methods have the same signatures in both.
struct Group {
  Backend backend;
  int rank = 0;
  int size = 1;
  std::chrono::milliseconds timeout;
  c10::intrusive_ptr<c10d::Store> store;
  at::Device device = at::Device(at::kCPU);
#ifdef USE_C10D_GLOO
  c10::intrusive_ptr<c10d::ProcessGroupGloo> gloo;
#endif
#ifdef USE_C10D_NCCL
  c10::intrusive_ptr<c10d::ProcessGroupNCCL> nccl;
#endif

  c10::intrusive_ptr<c10d::Work> allreduce(std::vector<at::Tensor> &t) {
    c10d::AllreduceOptions o;
    o.reduceOp = c10d::ReduceOp::SUM;
    o.timeout = timeout;
#ifdef USE_C10D_GLOO
    if (gloo) return gloo->allreduce(t, o);
#endif
#ifdef USE_C10D_NCCL
    if (nccl) return nccl->allreduce(t, o);
#endif
    throw std::runtime_error("no process group");
  }

  c10::intrusive_ptr<c10d::Work> broadcast(std::vector<at::Tensor> &t, int root) {
    c10d::BroadcastOptions o;
    o.rootRank = root;
    o.rootTensor = 0;
    o.timeout = timeout;
#ifdef USE_C10D_GLOO
    if (gloo) return gloo->broadcast(t, o);
#endif
#ifdef USE_C10D_NCCL
    if (nccl) return nccl->broadcast(t, o);
#endif
    throw std::runtime_error("no process group");
  }

  c10::intrusive_ptr<c10d::Work> barrier() {
    c10d::BarrierOptions o;
    o.timeout = timeout;
#ifdef USE_C10D_GLOO
    if (gloo) return gloo->barrier(o);
#endif
#ifdef USE_C10D_NCCL
    if (nccl) {
      o.device_ids = {static_cast<int64_t>(device.index())};
      return nccl->barrier(o);
    }
#endif
    throw std::runtime_error("no process group");
  }

  void wait(const c10::intrusive_ptr<c10d::Work> &w) {
    if (!w->wait(timeout)) {
      throw std::runtime_error("collective did not finish within the timeout");
    }
  }
};

// A bucket is a run of tensors of one dtype and device that travel as one
// flat buffer, so a model's hundreds of parameters cost a few collectives.
struct Bucket {
  std::vector<at::Tensor> members;
  at::Tensor flat; // what is sent; the member itself when alone and ready
  bool staged = false;
};

std::vector<Bucket> make_buckets(const std::vector<at::Tensor> &ts, int64_t bucket_bytes) {
  std::vector<Bucket> out;
  int64_t bytes = 0;
  for (const auto &t : ts) {
    int64_t nb = t.numel() * static_cast<int64_t>(t.element_size());
    bool fresh = out.empty() || out.back().members.front().scalar_type() != t.scalar_type() ||
                 out.back().members.front().device() != t.device() ||
                 bytes + nb > bucket_bytes;
    if (fresh) {
      out.emplace_back();
      bytes = 0;
    }
    out.back().members.push_back(t);
    bytes += nb;
  }
  return out;
}

// stage fills b.flat with the members' contents on the group's device.
void stage(Bucket &b, const at::Device &dev) {
  if (b.members.size() == 1 && b.members[0].is_contiguous() && b.members[0].device() == dev) {
    b.flat = b.members[0];
    return;
  }
  std::vector<at::Tensor> parts;
  parts.reserve(b.members.size());
  for (const auto &m : b.members) parts.push_back(m.reshape({-1}));
  b.flat = (parts.size() == 1 ? parts[0].clone() : at::cat(parts)).to(dev);
  b.staged = true;
}

// unstage copies b.flat back into the members when it is a separate buffer.
void unstage(Bucket &b) {
  if (!b.staged) return;
  at::Tensor src = b.flat.device() == b.members[0].device() ? b.flat : b.flat.to(b.members[0].device());
  int64_t off = 0;
  for (auto &m : b.members) {
    int64_t n = m.numel();
    m.copy_(src.narrow(0, off, n).view(m.sizes()));
    off += n;
  }
}

std::vector<at::Tensor> tensors_of(void **ts, int n) {
  std::vector<at::Tensor> out;
  out.reserve(n);
  for (int i = 0; i < n; i++) {
    if (ts[i] == nullptr) throw std::runtime_error("tensor " + std::to_string(i) + " is nil");
    const at::Tensor &t = *static_cast<at::Tensor *>(ts[i]);
    if (!t.defined()) throw std::runtime_error("tensor " + std::to_string(i) + " is undefined");
    out.push_back(t);
  }
  return out;
}

void check_group(void *g) {
  if (g == nullptr) throw std::runtime_error("the process group is closed");
}

} // namespace

extern "C" {

// pltune_c10d_backends tells which backends this build has: bit 1 Gloo,
// bit 2 NCCL.
int pltune_c10d_backends() {
  int b = 0;
#ifdef USE_C10D_GLOO
  b |= kGloo;
#endif
#ifdef USE_C10D_NCCL
  b |= kNCCL;
#endif
  return b;
}

// pltune_c10d_new_group joins a group: it connects to (rank 0 of a group
// without an agent store: hosts) the TCPStore at addr:port, under prefix
// when not empty, and creates the backend's process group over it. ifname,
// when not empty, names the network interfaces Gloo binds to (comma
// separated, as GLOO_SOCKET_IFNAME); device is the CUDA device for NCCL.
char *pltune_c10d_new_group(const char *backend, const char *addr, int port, int rank, int size,
                            int device, int64_t timeout_ms, int agent_store, const char *prefix,
                            const char *ifname, void **out) {
  try {
    *out = nullptr;
    std::string be(backend);
    auto g = std::make_unique<Group>();
    g->rank = rank;
    g->size = size;
    g->timeout = std::chrono::milliseconds(timeout_ms);
    c10d::TCPStoreOptions so;
    so.port = static_cast<std::uint16_t>(port);
    so.isServer = rank == 0 && !agent_store;
    so.numWorkers = static_cast<std::size_t>(size);
    // Every member must count itself in (that is part of waiting), or the
    // server waits for members that never report.
    so.waitWorkers = true;
    so.timeout = g->timeout;
    c10::intrusive_ptr<c10d::Store> store = c10::make_intrusive<c10d::TCPStore>(std::string(addr), so);
    if (prefix != nullptr && prefix[0] != '\0') {
      store = c10::make_intrusive<c10d::PrefixStore>(std::string(prefix), store);
    }
    g->store = store;
    if (be == "gloo") {
#ifdef USE_C10D_GLOO
      g->backend = kGloo;
      auto opts = c10d::ProcessGroupGloo::Options::create(g->timeout);
      std::string names = ifname == nullptr ? "" : ifname;
      if (!names.empty()) {
        std::stringstream ss(names);
        std::string name;
        while (std::getline(ss, name, ',')) {
          if (!name.empty()) opts->devices.push_back(c10d::ProcessGroupGloo::createDeviceForInterface(name));
        }
      } else {
        std::string a(addr);
        if (a == "127.0.0.1" || a == "localhost" || a == "::1") {
          opts->devices.push_back(c10d::ProcessGroupGloo::createDeviceForHostname(a));
        } else {
          opts->devices.push_back(c10d::ProcessGroupGloo::createDefaultDevice());
        }
      }
      opts->threads = 2;
      g->gloo = c10::make_intrusive<c10d::ProcessGroupGloo>(store, rank, size, opts);
#else
      return dup_err("this libtorch build of pltune has no Gloo backend (the linked libtorch lacks "
                     "ProcessGroupGloo, or gloo's headers were missing at setup: install libgloo-dev "
                     "and run pltune's setup again)");
#endif
    } else if (be == "nccl") {
#ifdef USE_C10D_NCCL
      g->backend = kNCCL;
      g->device = at::Device(at::kCUDA, static_cast<c10::DeviceIndex>(device));
      auto opts = c10d::ProcessGroupNCCL::Options::create();
      opts->timeout = g->timeout;
      g->nccl = c10::make_intrusive<c10d::ProcessGroupNCCL>(store, rank, size, opts);
#else
      return dup_err("this libtorch build of pltune has no NCCL backend (the linked libtorch lacks "
                     "ProcessGroupNCCL, or NCCL's headers were missing at setup)");
#endif
    } else {
      return dup_err("unknown backend \"" + be + "\"; want gloo or nccl");
    }
    *out = g.release();
    return nullptr;
  } catch (const std::exception &e) {
    return dup_err(e.what());
  } catch (...) {
    return dup_err("unknown C++ exception");
  }
}

// pltune_c10d_allreduce replaces each of the n tensors by its sum over the
// group (its mean when average is set), in buckets of about bucket_bytes:
// every bucket's collective is started before the first is waited for.
char *pltune_c10d_allreduce(void *gp, void **tensors, int n, int average, int64_t bucket_bytes) {
  try {
    check_group(gp);
    Group *g = static_cast<Group *>(gp);
    at::NoGradGuard no_grad;
    auto ts = tensors_of(tensors, n);
    auto buckets = make_buckets(ts, bucket_bytes);
    std::vector<c10::intrusive_ptr<c10d::Work>> works;
    for (auto &b : buckets) {
      if (average && !at::isFloatingType(b.members[0].scalar_type())) {
        throw std::runtime_error(std::string("cannot average a tensor of ") +
                                 c10::toString(b.members[0].scalar_type()));
      }
      stage(b, g->backend == kNCCL ? g->device : b.members[0].device());
      std::vector<at::Tensor> one{b.flat};
      works.push_back(g->allreduce(one));
    }
    for (size_t i = 0; i < buckets.size(); i++) {
      g->wait(works[i]);
      if (average) buckets[i].flat.div_(g->size);
      unstage(buckets[i]);
    }
    return nullptr;
  } catch (const std::exception &e) {
    return dup_err(e.what());
  } catch (...) {
    return dup_err("unknown C++ exception");
  }
}

// pltune_c10d_broadcast replaces each of the n tensors by root's, in
// buckets of about bucket_bytes.
char *pltune_c10d_broadcast(void *gp, void **tensors, int n, int root, int64_t bucket_bytes) {
  try {
    check_group(gp);
    Group *g = static_cast<Group *>(gp);
    if (root < 0 || root >= g->size) {
      throw std::runtime_error("root rank " + std::to_string(root) + " is outside the group of " +
                               std::to_string(g->size));
    }
    at::NoGradGuard no_grad;
    auto ts = tensors_of(tensors, n);
    auto buckets = make_buckets(ts, bucket_bytes);
    std::vector<c10::intrusive_ptr<c10d::Work>> works;
    for (auto &b : buckets) {
      stage(b, g->backend == kNCCL ? g->device : b.members[0].device());
      std::vector<at::Tensor> one{b.flat};
      works.push_back(g->broadcast(one, root));
    }
    for (size_t i = 0; i < buckets.size(); i++) {
      g->wait(works[i]);
      unstage(buckets[i]);
    }
    return nullptr;
  } catch (const std::exception &e) {
    return dup_err(e.what());
  } catch (...) {
    return dup_err("unknown C++ exception");
  }
}

// pltune_c10d_barrier returns when every rank has called it.
char *pltune_c10d_barrier(void *gp) {
  try {
    check_group(gp);
    Group *g = static_cast<Group *>(gp);
    g->wait(g->barrier());
    return nullptr;
  } catch (const std::exception &e) {
    return dup_err(e.what());
  } catch (...) {
    return dup_err("unknown C++ exception");
  }
}

// pltune_c10d_free_group releases a group. A group whose collective failed
// may still have a backend thread blocked on a dead peer, and destroying it
// would wait for that thread, so such a group is released without its
// process group (the memory is reclaimed when the process exits).
void pltune_c10d_free_group(void *gp, int broken) {
  if (gp == nullptr) return;
  Group *g = static_cast<Group *>(gp);
  if (broken) {
#ifdef USE_C10D_GLOO
    (void)g->gloo.release();
#endif
#ifdef USE_C10D_NCCL
    (void)g->nccl.release();
#endif
    (void)g->store.release();
  }
  try {
    delete g;
  } catch (...) {
  }
}

} // extern "C"

package dist

import (
	"net"
	"strings"
	"testing"
	"time"

	"github.com/sugarme/gotch/ts"
)

func envOf(m map[string]string) func(string) string {
	return func(k string) string { return m[k] }
}

func TestReadEnv(t *testing.T) {
	base := func() map[string]string {
		return map[string]string{"MASTER_ADDR": "10.0.0.1", "MASTER_PORT": "29500", "RANK": "3", "WORLD_SIZE": "4", "LOCAL_RANK": "1"}
	}
	for _, c := range []struct {
		name    string
		edit    func(map[string]string)
		want    Env
		wantErr string
	}{
		{"full", func(map[string]string) {}, Env{MasterAddr: "10.0.0.1", MasterPort: 29500, Rank: 3, WorldSize: 4, LocalRank: 1}, ""},
		{"no local rank", func(m map[string]string) { delete(m, "LOCAL_RANK") }, Env{MasterAddr: "10.0.0.1", MasterPort: 29500, Rank: 3, WorldSize: 4}, ""},
		{"agent store", func(m map[string]string) {
			m["TORCHELASTIC_USE_AGENT_STORE"] = "True"
			m["TORCHELASTIC_RESTART_COUNT"] = "2"
			m["GLOO_SOCKET_IFNAME"] = "eth0"
		}, Env{MasterAddr: "10.0.0.1", MasterPort: 29500, Rank: 3, WorldSize: 4, LocalRank: 1, AgentStore: true, RestartCount: 2, GlooIfname: "eth0"}, ""},
		{"not launched", func(m map[string]string) { delete(m, "WORLD_SIZE") }, Env{}, "WORLD_SIZE is not set"},
		{"no rank", func(m map[string]string) { delete(m, "RANK") }, Env{}, "RANK is not set"},
		{"no port", func(m map[string]string) { delete(m, "MASTER_PORT") }, Env{}, "MASTER_PORT is not set"},
		{"no addr", func(m map[string]string) { delete(m, "MASTER_ADDR") }, Env{}, "MASTER_ADDR is not set"},
		{"rank too big", func(m map[string]string) { m["RANK"] = "4" }, Env{}, "RANK=4 is outside WORLD_SIZE=4"},
		{"bad port", func(m map[string]string) { m["MASTER_PORT"] = "70000" }, Env{}, `MASTER_PORT="70000": want an integer from 1 to 65535`},
		{"bad world", func(m map[string]string) { m["WORLD_SIZE"] = "two" }, Env{}, `WORLD_SIZE="two"`},
		{"negative rank", func(m map[string]string) { m["RANK"] = "-1" }, Env{}, `RANK="-1"`},
	} {
		t.Run(c.name, func(t *testing.T) {
			m := base()
			c.edit(m)
			got, err := ReadEnv(envOf(m))
			if c.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), c.wantErr) {
					t.Fatalf("error %v, want one containing %q", err, c.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got != c.want {
				t.Fatalf("got %+v, want %+v", got, c.want)
			}
		})
	}
}

func TestParseTimeout(t *testing.T) {
	for _, c := range []struct {
		in   string
		want time.Duration
		ok   bool
	}{
		{"90s", 90 * time.Second, true},
		{"10m", 10 * time.Minute, true},
		{"30", 30 * time.Second, true},
		{" 1.5 ", 1500 * time.Millisecond, true},
		{"0", 0, false},
		{"-5s", 0, false},
		{"soon", 0, false},
		{"1e300", 0, false},
		{"", 0, false},
	} {
		got, err := ParseTimeout(c.in)
		if (err == nil) != c.ok || got != c.want {
			t.Errorf("ParseTimeout(%q) = %v, %v; want %v, ok %v", c.in, got, err, c.want, c.ok)
		}
	}
}

func TestCleanMessage(t *testing.T) {
	in := "Socket Timeout\nException raised from recvBytes at ./torch/csrc/distributed/c10d/Utils.hpp:594 (most recent call first):\nframe #0: c10::Error::Error"
	if got := cleanMessage(in); got != "Socket Timeout" {
		t.Fatalf("cleanMessage kept %q", got)
	}
	if got := cleanMessage("[pair.cc:598] Connection closed by peer"); got != "[pair.cc:598] Connection closed by peer" {
		t.Fatalf("cleanMessage changed a plain message: %q", got)
	}
}

func TestBackendsHasGlooOnCPU(t *testing.T) {
	b := Backends()
	for _, x := range b {
		if x != "gloo" && x != "nccl" {
			t.Fatalf("Backends() = %v", b)
		}
	}
	if len(b) == 0 {
		t.Skip("this build has no c10d backend (setup found no Gloo headers: apt-get install libgloo-dev)")
	}
}

func TestInitErrors(t *testing.T) {
	env := Env{MasterAddr: "127.0.0.1", MasterPort: 1, WorldSize: 1}
	if _, err := InitEnv(t.Context(), env, Options{Backend: "mpi"}); err == nil || !strings.Contains(err.Error(), `unknown backend "mpi"`) {
		t.Errorf("backend mpi: %v", err)
	}
	t.Setenv(TimeoutEnv, "soon")
	if _, err := InitEnv(t.Context(), env, Options{}); err == nil || !strings.Contains(err.Error(), TimeoutEnv) {
		t.Errorf("bad %s: %v", TimeoutEnv, err)
	}
}

// TestSingleRankGroup exercises the collectives in a group of one: they
// must leave the values as they are, except the mean of an integer tensor,
// which is refused.
func TestSingleRankGroup(t *testing.T) {
	if len(Backends()) == 0 {
		t.Skip("no c10d backend in this build")
	}
	port := freePortForTest(t)
	g, err := InitEnv(t.Context(), Env{MasterAddr: "127.0.0.1", MasterPort: port, WorldSize: 1}, Options{Backend: "gloo", Timeout: 20 * time.Second, BucketBytes: 8})
	if err != nil {
		t.Fatal(err)
	}
	defer g.Close()
	if g.Rank() != 0 || g.Size() != 1 || g.Backend() != "gloo" {
		t.Fatalf("group: rank %d size %d backend %s", g.Rank(), g.Size(), g.Backend())
	}
	a := ts.MustOfSlice([]float32{1, 2, 3, 4, 5})
	b := ts.MustOfSlice([]float64{0.5}).MustView([]int64{1, 1}, true)
	if err := g.AllReduce([]*ts.Tensor{a, b}, Average); err != nil {
		t.Fatal(err)
	}
	if v := a.Float64Values(); v[4] != 5 || b.Float64Values()[0] != 0.5 {
		t.Fatalf("all-reduce over one rank changed values: %v %v", v, b.Float64Values())
	}
	if err := g.Broadcast([]*ts.Tensor{a}, 0); err != nil {
		t.Fatal(err)
	}
	if err := g.Barrier(); err != nil {
		t.Fatal(err)
	}
	if err := g.Broadcast([]*ts.Tensor{a}, 1); err == nil || !strings.Contains(err.Error(), "root rank 1") {
		t.Fatalf("broadcast from rank 1 of 1: %v", err)
	}
	// That failure broke the group: later calls report it.
	if err := g.Barrier(); err == nil {
		t.Fatal("a broken group's barrier succeeded")
	}
}

func FuzzParseTimeout(f *testing.F) {
	for _, s := range []string{"90s", "30", "1.5", "-1", "1e300", "NaN", "Inf", "0x10"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		d, err := ParseTimeout(s)
		if err == nil && d <= 0 {
			t.Fatalf("ParseTimeout(%q) = %v without error", s, d)
		}
	})
}

func FuzzReadEnv(f *testing.F) {
	f.Add("127.0.0.1", "29500", "0", "2", "0")
	f.Add("", "x", "-3", "0", "")
	f.Fuzz(func(t *testing.T, addr, port, rank, world, local string) {
		m := map[string]string{"MASTER_ADDR": addr, "MASTER_PORT": port, "RANK": rank, "WORLD_SIZE": world, "LOCAL_RANK": local}
		e, err := ReadEnv(envOf(m))
		if err == nil && (e.Rank < 0 || e.Rank >= e.WorldSize || e.MasterPort < 1 || e.MasterPort > 65535 || e.MasterAddr == "") {
			t.Fatalf("ReadEnv accepted %+v", e)
		}
	})
}

func freePortForTest(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

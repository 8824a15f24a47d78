package eval

import (
	"context"
	"crypto/sha256"
	"encoding/binary"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/pltune/pltune/train/safetensors"
)

// versionedModel is fakeModel with a fingerprint: the same name ("final")
// for models that differ.
type versionedModel struct {
	fakeModel
	fp string
}

func (m *versionedModel) Name() string        { return "final" }
func (m *versionedModel) Fingerprint() string { return m.fp }

// TestCacheKeyedByFingerprint: a model with the same name but another
// fingerprint (retrained into the same folder) is asked again; the same
// fingerprint is answered from the cache.
func TestCacheKeyedByFingerprint(t *testing.T) {
	cacheFile := filepath.Join(t.TempDir(), "cache.jsonl")
	tasks := testTasks(t)
	run := func(fp string) (*Result, *versionedModel) {
		m := &versionedModel{fakeModel: fakeModel{answers: map[string]string{"rzeka": "Wisła"}}, fp: fp}
		res, err := Run(context.Background(), m, tasks, Options{CacheFile: cacheFile})
		if err != nil {
			t.Fatal(err)
		}
		return res, m
	}
	first, _ := run("aaa")
	if first.Cached != 0 || first.Requests == 0 {
		t.Fatalf("first run: %d cached, %d asked", first.Cached, first.Requests)
	}
	again, m := run("aaa")
	if again.Requests != 0 || m.genCalls.Load() != 0 {
		t.Errorf("same fingerprint: %d requests asked, want all %d from the cache", again.Requests, first.Requests)
	}
	other, m := run("bbb")
	if other.Cached != 0 || other.Requests != first.Requests || m.genCalls.Load() == 0 {
		t.Errorf("new fingerprint: %d cached, %d asked; want none cached, %d asked", other.Cached, other.Requests, first.Requests)
	}
}

func writeWeights(t *testing.T, path string, vals []float32) {
	t.Helper()
	data, err := safetensors.EncodeFloat32(nil, safetensors.F32, vals)
	if err != nil {
		t.Fatal(err)
	}
	src := []safetensors.Source{{
		Tensor: safetensors.Tensor{Name: "w", DType: safetensors.F32, Shape: []int64{int64(len(vals))}},
		Data:   func() ([]byte, error) { return data, nil },
	}}
	if err := safetensors.WriteFile(path, src, nil); err != nil {
		t.Fatal(err)
	}
}

// TestFingerprintDirs: the fingerprint changes with the weights (even at
// the same shapes, size and modification time), with config.json and with
// an adapter folder added; it stays put when nothing changes.
func TestFingerprintDirs(t *testing.T) {
	dir := t.TempDir()
	model, adapter := filepath.Join(dir, "model"), filepath.Join(dir, "adapter")
	os.MkdirAll(model, 0o755)
	os.MkdirAll(adapter, 0o755)
	weights := filepath.Join(model, "model.safetensors")
	cfg := filepath.Join(model, "config.json")
	os.WriteFile(cfg, []byte(`{"vocab_size": 8}`), 0o644)
	vals := make([]float32, 100_000) // more than both 64 KiB samples
	writeWeights(t, weights, vals)
	stamp := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	os.Chtimes(weights, stamp, stamp)
	fp := func(dirs ...string) string {
		t.Helper()
		s, err := FingerprintDirs(dirs...)
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	base := fp(model)
	if again := fp(model, "", model); again != base {
		t.Errorf("unchanged folder: %s then %s", base, again)
	}
	vals[len(vals)-1] = 1 // retrained: the same shapes and size
	writeWeights(t, weights, vals)
	os.Chtimes(weights, stamp, stamp)
	retrained := fp(model)
	if retrained == base {
		t.Error("new weights of the same size and time: same fingerprint")
	}
	os.WriteFile(cfg, []byte(`{"vocab_size": 9}`), 0o644)
	if fp(model) == retrained {
		t.Error("new config.json: same fingerprint")
	}
	os.WriteFile(filepath.Join(adapter, "adapter_config.json"), []byte(`{"r": 4}`), 0o644)
	writeWeights(t, filepath.Join(adapter, "adapter_model.safetensors"), []float32{1, 2})
	if fp(model, adapter) == fp(model) {
		t.Error("an adapter on top: same fingerprint as the base")
	}
	if _, err := FingerprintDirs(filepath.Join(dir, "none")); err == nil {
		t.Error("a missing folder fingerprinted")
	}
	empty := filepath.Join(dir, "empty")
	os.MkdirAll(empty, 0o755)
	if _, err := FingerprintDirs(empty); err == nil {
		t.Error("a folder without model files fingerprinted")
	}
	os.WriteFile(filepath.Join(empty, "x.safetensors"), []byte("junk"), 0o644)
	if _, err := FingerprintDirs(empty); err == nil {
		t.Error("a file that is no safetensors fingerprinted")
	}
}

// BenchmarkFingerprintDirs compares the fingerprint of a folder holding a
// 1 GiB weight file (sparse on disk) with hashing the file whole.
func BenchmarkFingerprintDirs(b *testing.B) {
	dir := b.TempDir()
	weights := filepath.Join(dir, "model.safetensors")
	const n = 1 << 28 // float32s: 1 GiB
	hdr := fmt.Sprintf(`{"w":{"dtype":"F32","shape":[%d],"data_offsets":[0,%d]}}`, n, 4*n)
	var lenBuf [8]byte
	binary.LittleEndian.PutUint64(lenBuf[:], uint64(len(hdr)))
	f, err := os.Create(weights)
	if err != nil {
		b.Fatal(err)
	}
	f.Write(lenBuf[:])
	f.WriteString(hdr)
	if err := f.Truncate(int64(8 + len(hdr) + 4*n)); err != nil {
		b.Fatal(err)
	}
	f.Close()
	os.WriteFile(filepath.Join(dir, "config.json"), []byte(`{"vocab_size": 8}`), 0o644)
	b.Run("fingerprint", func(b *testing.B) {
		for b.Loop() {
			if _, err := FingerprintDirs(dir); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("sha256-whole", func(b *testing.B) {
		for b.Loop() {
			f, err := os.Open(weights)
			if err != nil {
				b.Fatal(err)
			}
			h := sha256.New()
			if _, err := io.Copy(h, f); err != nil {
				b.Fatal(err)
			}
			f.Close()
		}
	})
}

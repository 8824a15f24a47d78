package train

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/pltune/pltune/internal/torchx"
	"github.com/pltune/pltune/train/safetensors"
	"github.com/sugarme/gotch/ts"
)

// TestConsolidateZeroCheckpointErrors: a one-process stage-3 checkpoint
// consolidates, in the precision asked for; a folder without the layout
// file, a missing rank's shard file, a shard missing a piece and a
// checkpoint whose frozen tensors have no base folder are refused with
// what is wrong (with the base folder the frozen tensor comes from it); a
// cancelled context stops the writing.
func TestConsolidateZeroCheckpointErrors(t *testing.T) {
	torchx.SetGradEnabled(true)
	m, obj := zeroTinyLlama(t, true, false)
	defer m.Drop()
	cfg := DefaultTrainerConfig()
	cfg.OutDir, cfg.MaxSteps, cfg.BatchSize, cfg.ZeroStage, cfg.Model = t.TempDir(), 2, 2, 3, m
	tr, err := NewTrainer(cfg, m.NamedParameters(), obj, nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tr.Run(context.Background()); err != nil {
		t.Fatal(err)
	}
	ck := filepath.Join(cfg.OutDir, "checkpoint-2")
	out := t.TempDir()
	if err := ConsolidateZeroCheckpoint(context.Background(), ck, out, ConsolidateOptions{DType: "BF16"}); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(filepath.Join(out, "config.json"))
	if err != nil || !strings.Contains(string(b), `"torch_dtype": "bfloat16"`) {
		t.Errorf("config.json: %v\n%s", err, b)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := ConsolidateZeroCheckpoint(ctx, ck, t.TempDir(), ConsolidateOptions{}); err == nil || !strings.Contains(err.Error(), "canceled") {
		t.Errorf("cancelled: %v", err)
	}
	if err := ConsolidateZeroCheckpoint(context.Background(), t.TempDir(), t.TempDir(), ConsolidateOptions{}); err == nil || !strings.Contains(err.Error(), "not a ZeRO checkpoint") {
		t.Errorf("no layout: %v", err)
	}
	shard := filepath.Join(ck, zeroShardFile(0, 1))
	raw, err := os.ReadFile(shard)
	if err != nil {
		t.Fatal(err)
	}
	// The piece names are in the header: rename one weight piece.
	bad := strings.Replace(string(raw), "weight.model.norm.weight[", "weight.model.norm.weighx[", 1)
	if err := os.WriteFile(shard, []byte(bad), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := ConsolidateZeroCheckpoint(context.Background(), ck, t.TempDir(), ConsolidateOptions{}); err == nil || !strings.Contains(err.Error(), "model.norm.weight: the shards hold 0 of its 16 elements") {
		t.Errorf("missing piece: %v", err)
	}
	// A full fine-tune with a frozen tensor: it is not in the checkpoint,
	// the base folder gives it.
	lp := filepath.Join(ck, zeroLayoutFile)
	lb, _ := os.ReadFile(lp)
	os.WriteFile(lp, []byte(strings.Replace(string(lb), `"param": "model.norm.weight",`, "", 1)), 0o644)
	if err := ConsolidateZeroCheckpoint(context.Background(), ck, t.TempDir(), ConsolidateOptions{}); err == nil || !strings.Contains(err.Error(), "model.norm.weight was frozen") {
		t.Errorf("frozen tensor without a base: %v", err)
	}
	base, _ := zeroTinyLlama(t, true, false)
	defer base.Drop()
	torchx.NoGrad(func() { base.norm.MustMulScalar_(ts.FloatScalar(3)) })
	baseDir := t.TempDir()
	if err := base.Save(baseDir, SaveOptions{}); err != nil {
		t.Fatal(err)
	}
	out = t.TempDir()
	if err := ConsolidateZeroCheckpoint(context.Background(), ck, out, ConsolidateOptions{BaseDir: baseDir}); err != nil {
		t.Fatalf("frozen tensor from the base: %v", err)
	}
	f, err := safetensors.OpenFile(filepath.Join(out, "model.safetensors"))
	if err != nil {
		t.Fatal(err)
	}
	norm, err := f.ReadFloat32("model.norm.weight")
	f.Close()
	if err != nil || len(norm) != 16 || norm[0] != 3 {
		t.Errorf("the frozen norm from the base: %v, %v; want 16 threes", norm, err)
	}
	os.Remove(shard)
	if err := ConsolidateZeroCheckpoint(context.Background(), ck, t.TempDir(), ConsolidateOptions{BaseDir: baseDir}); err == nil || !strings.Contains(err.Error(), "rank 0's shard") {
		t.Errorf("missing shard file: %v", err)
	}
}

package eval

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"sync"
)

// Record is one model answer kept in the results cache: the raw output for
// one item in one mode. Scores are recomputed from records, so a change in
// normalisation or detection never needs the model again.
type Record struct {
	Key   string `json:"key"`
	Task  string `json:"task"`
	Item  string `json:"item"`
	Model string `json:"model"`
	Mode  string `json:"mode"` // "generate" or "loglikelihood"
	// Generation holds a generated answer.
	Generation *Generation `json:"generation,omitempty"`
	// Loglikelihoods holds one result per answer of a multiple-choice item.
	Loglikelihoods []LoglikelihoodResult `json:"loglikelihoods,omitempty"`
}

// recordKey hashes everything that decides a model's output for an item:
// task, item id and content, model, mode and the generation settings.
func recordKey(parts ...any) string {
	h := sha256.New()
	enc := json.NewEncoder(h)
	for _, p := range parts {
		if err := enc.Encode(p); err != nil {
			panic(fmt.Sprintf("eval: cache key part %T: %v", p, err))
		}
	}
	return hex.EncodeToString(h.Sum(nil)[:16])
}

// cache is the append-only JSONL results cache.
type cache struct {
	mu      sync.Mutex
	f       *os.File
	records map[string]Record
}

// openCache loads path (creating it when missing). A torn last line, left by
// an interrupted write, is cut off so that appends start on a fresh line.
func openCache(path string) (*cache, error) {
	c := &cache{records: map[string]Record{}}
	if path == "" {
		return c, nil
	}
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o644)
	if err != nil {
		return nil, fmt.Errorf("eval: results cache: %w", err)
	}
	data, err := io.ReadAll(f)
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("eval: results cache %s: %w", path, err)
	}
	good := 0
	line := 0
	for rest := data; len(rest) > 0; {
		i := bytes.IndexByte(rest, '\n')
		if i < 0 {
			break // torn: no newline yet
		}
		line++
		var r Record
		if err := json.Unmarshal(rest[:i], &r); err != nil {
			f.Close()
			return nil, fmt.Errorf("eval: results cache %s: line %d: %v; delete the file to start over", path, line, err)
		}
		if r.Key != "" {
			c.records[r.Key] = r
		}
		good += i + 1
		rest = rest[i+1:]
	}
	if good < len(data) {
		if err := f.Truncate(int64(good)); err != nil {
			f.Close()
			return nil, fmt.Errorf("eval: results cache %s: %w", path, err)
		}
	}
	if _, err := f.Seek(int64(good), io.SeekStart); err != nil {
		f.Close()
		return nil, fmt.Errorf("eval: results cache %s: %w", path, err)
	}
	c.f = f
	return c, nil
}

func (c *cache) get(key string) (Record, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	r, ok := c.records[key]
	return r, ok
}

// put stores records and appends them to the file in one write each, so a
// crash loses at most the line being written.
func (c *cache) put(rs ...Record) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	var buf bytes.Buffer
	w := bufio.NewWriter(&buf)
	enc := json.NewEncoder(w)
	enc.SetEscapeHTML(false)
	for _, r := range rs {
		c.records[r.Key] = r
		if err := enc.Encode(r); err != nil {
			return fmt.Errorf("eval: results cache: %w", err)
		}
	}
	if c.f == nil {
		return nil
	}
	w.Flush()
	if _, err := c.f.Write(buf.Bytes()); err != nil {
		return fmt.Errorf("eval: results cache: %w", err)
	}
	return nil
}

func (c *cache) close() error {
	if c.f == nil {
		return nil
	}
	return c.f.Close()
}

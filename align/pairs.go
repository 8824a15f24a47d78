package align

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"iter"
	"math"
	"os"
	"strconv"

	"github.com/pltune/pltune/corpus"
)

// Response is one candidate answer to a prompt, with a rank (1 is best;
// lower is better) or a rating (higher is better).
type Response struct {
	Messages []corpus.Message // the response turns, usually one assistant message
	Rank     *int
	Rating   *float64
}

// Ranked is a prompt with several judged responses: a ranking list (every
// response has a Rank) or rated responses (every response has a Rating).
type Ranked struct {
	ID        string
	Prompt    []corpus.Message
	Responses []Response
}

// PairsFromRanking turns a ranking list into preference pairs: each
// response against each worse-ranked one (n responses of distinct ranks
// give n(n−1)/2 pairs). Equal ranks make no pair. Pair ids are
// "ID:i>j" with the responses' 0-based positions.
func PairsFromRanking(r *Ranked) ([]corpus.PreferencePair, error) {
	for i, resp := range r.Responses {
		if resp.Rank == nil {
			return nil, fmt.Errorf("align: %q: response %d has no rank", r.ID, i+1)
		}
	}
	return pairsBy(r, func(a, b Response) bool { return *a.Rank < *b.Rank })
}

// PairsFromRatings turns rated responses into preference pairs: each
// response against each one rated at least minMargin lower (minMargin 0
// still needs a strictly lower rating). The pairs carry both ratings.
func PairsFromRatings(r *Ranked, minMargin float64) ([]corpus.PreferencePair, error) {
	if minMargin < 0 || math.IsNaN(minMargin) {
		return nil, fmt.Errorf("align: minimum rating margin %v: want ≥ 0", minMargin)
	}
	for i, resp := range r.Responses {
		if resp.Rating == nil || math.IsNaN(*resp.Rating) || math.IsInf(*resp.Rating, 0) {
			return nil, fmt.Errorf("align: %q: response %d has no finite rating", r.ID, i+1)
		}
	}
	return pairsBy(r, func(a, b Response) bool {
		d := *a.Rating - *b.Rating
		return d > 0 && d >= minMargin
	})
}

func pairsBy(r *Ranked, better func(a, b Response) bool) ([]corpus.PreferencePair, error) {
	var out []corpus.PreferencePair
	for i, a := range r.Responses {
		for j, b := range r.Responses {
			if i == j || !better(a, b) {
				continue
			}
			p := corpus.PreferencePair{
				ID:     r.ID + ":" + strconv.Itoa(i) + ">" + strconv.Itoa(j),
				Prompt: r.Prompt, Chosen: a.Messages, Rejected: b.Messages,
				ChosenRating: a.Rating, RejectedRating: b.Rating,
			}
			if err := corpus.ValidatePair(&p, corpus.Limits{}); err != nil {
				return nil, fmt.Errorf("align: %q: responses %d and %d: %w", r.ID, i+1, j+1, err)
			}
			out = append(out, p)
		}
	}
	return out, nil
}

// KeepByMargin tells whether a rated pair's chosen rating exceeds the
// rejected one by at least minMargin. A pair without both ratings is kept:
// there is nothing to judge it by.
func KeepByMargin(p *corpus.PreferencePair, minMargin float64) bool {
	if p.ChosenRating == nil || p.RejectedRating == nil {
		return true
	}
	return *p.ChosenRating-*p.RejectedRating >= minMargin
}

// rankedRecord is one line of a ranked-responses file. The prompt is a
// message list or a single user message's text; a response is a message
// list or a single assistant message's text.
type rankedRecord struct {
	ID        json.RawMessage `json:"id"`
	Prompt    json.RawMessage `json:"prompt"`
	Responses []struct {
		Content  *string          `json:"content"`
		Messages []corpus.Message `json:"messages"`
		Rank     *int             `json:"rank"`
		Rating   *float64         `json:"rating"`
	} `json:"responses"`
}

// ErrRanked is wrapped by every error about a ranked-responses record.
var ErrRanked = errors.New("bad ranked-responses record")

// ReadRanked reads a ranked-responses JSONL file (see ParseRanked).
func ReadRanked(ctx context.Context, path string) iter.Seq2[Ranked, error] {
	return func(yield func(Ranked, error) bool) {
		f, err := os.Open(path)
		if err != nil {
			yield(Ranked{}, err)
			return
		}
		defer f.Close()
		for r, err := range ParseRanked(ctx, f, path) {
			if !yield(r, err) || err != nil {
				return
			}
		}
	}
}

// ParseRanked yields the records of a ranked-responses JSONL stream, one
// JSON object a line (blank lines skipped):
//
//	{"id": "q1", "prompt": "Pytanie?" | [messages],
//	 "responses": [{"content": "…" | "messages": [...], "rank": 1 | "rating": 4.5}, …]}
//
// Every response has a rank, or every response has a rating. The first bad
// record ends the sequence with an error naming the file (name) and line.
func ParseRanked(ctx context.Context, r io.Reader, name string) iter.Seq2[Ranked, error] {
	return func(yield func(Ranked, error) bool) {
		br := bufio.NewReader(r)
		for line := 1; ; line++ {
			if err := ctx.Err(); err != nil {
				yield(Ranked{}, err)
				return
			}
			b, err := br.ReadBytes('\n')
			if len(bytes.TrimSpace(b)) > 0 {
				rec, perr := parseRankedLine(b, name, line)
				if perr != nil {
					yield(Ranked{}, fmt.Errorf("align: %s: line %d: %w", name, line, perr))
					return
				}
				if !yield(rec, nil) {
					return
				}
			}
			if err == io.EOF {
				return
			}
			if err != nil {
				yield(Ranked{}, fmt.Errorf("align: %s: %w", name, err))
				return
			}
		}
	}
}

func parseRankedLine(b []byte, name string, line int) (Ranked, error) {
	var rec rankedRecord
	if err := json.Unmarshal(b, &rec); err != nil {
		return Ranked{}, fmt.Errorf("%w: %v", ErrRanked, err)
	}
	out := Ranked{ID: name + ":" + strconv.Itoa(line)}
	if len(rec.ID) > 0 && string(rec.ID) != "null" {
		var s string
		if json.Unmarshal(rec.ID, &s) == nil {
			out.ID = s
		} else {
			out.ID = string(rec.ID)
		}
	}
	switch p := bytes.TrimSpace(rec.Prompt); {
	case len(p) == 0 || string(p) == "null":
		return Ranked{}, fmt.Errorf("%w: no \"prompt\"", ErrRanked)
	case p[0] == '"':
		var s string
		if err := json.Unmarshal(p, &s); err != nil {
			return Ranked{}, fmt.Errorf("%w: prompt: %v", ErrRanked, err)
		}
		out.Prompt = []corpus.Message{{Role: corpus.RoleUser, Content: s}}
	default:
		if err := json.Unmarshal(p, &out.Prompt); err != nil {
			return Ranked{}, fmt.Errorf("%w: prompt: want a string or a message list: %v", ErrRanked, err)
		}
	}
	if len(rec.Responses) < 2 {
		return Ranked{}, fmt.Errorf("%w: %d responses; want at least 2 to compare", ErrRanked, len(rec.Responses))
	}
	ranks, ratings := 0, 0
	for i, r := range rec.Responses {
		resp := Response{Rank: r.Rank, Rating: r.Rating}
		switch {
		case r.Content != nil && r.Messages != nil:
			return Ranked{}, fmt.Errorf("%w: response %d has both \"content\" and \"messages\"", ErrRanked, i+1)
		case r.Content != nil:
			resp.Messages = []corpus.Message{{Role: corpus.RoleAssistant, Content: *r.Content}}
		case len(r.Messages) > 0:
			resp.Messages = r.Messages
		default:
			return Ranked{}, fmt.Errorf("%w: response %d has neither \"content\" nor \"messages\"", ErrRanked, i+1)
		}
		if r.Rank != nil {
			ranks++
		}
		if r.Rating != nil {
			ratings++
		}
		out.Responses = append(out.Responses, resp)
	}
	if !(ranks == len(rec.Responses) && ratings == 0) && !(ratings == len(rec.Responses) && ranks == 0) {
		return Ranked{}, fmt.Errorf("%w: %d of %d responses have a \"rank\" and %d a \"rating\"; want every one to have the same one of them", ErrRanked, ranks, len(rec.Responses), ratings)
	}
	return out, nil
}

// Pairs turns a ranked record into pairs: by rank for a ranking list, by
// rating (at least minMargin apart) for rated responses.
func (r *Ranked) Pairs(minMargin float64) ([]corpus.PreferencePair, error) {
	if len(r.Responses) > 0 && r.Responses[0].Rank != nil {
		return PairsFromRanking(r)
	}
	return PairsFromRatings(r, minMargin)
}

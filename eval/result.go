package eval

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"time"
)

// Result is a run's outcome: the scores of every task.
type Result struct {
	Model    string       `json:"model"`
	Settings Settings     `json:"settings"`
	Started  time.Time    `json:"started"`
	Finished time.Time    `json:"finished"`
	Tasks    []TaskResult `json:"tasks"`
	// Requests counts the items asked of the model in this run; Cached
	// those answered from the cache.
	Requests int `json:"requests"`
	Cached   int `json:"cached"`
}

// TaskResult holds one task's scores; the field for its kind is set.
type TaskResult struct {
	Name      string          `json:"name"`
	Kind      Kind            `json:"kind"`
	OpenQA    *OpenQAScore    `json:"openqa,omitempty"`
	MC        *MCScore        `json:"mc,omitempty"`
	Refusal   *RefusalScore   `json:"refusal,omitempty"`
	Verbosity *VerbosityScore `json:"verbosity,omitempty"`
	Style     *StyleScore     `json:"style,omitempty"`
	Harness   *HarnessScore   `json:"harness,omitempty"`
	Items     []ItemResult    `json:"items"`
}

// ItemResult is one item's outcome, for reading through a run.
type ItemResult struct {
	ID       string `json:"id"`
	Category string `json:"category,omitempty"`
	Response string `json:"response,omitempty"`
	// Correct: open questions, and multiple choice by acc (log-likelihood)
	// or by the extracted letter (generative only).
	Correct *bool  `json:"correct,omitempty"`
	Matched string `json:"matched,omitempty"` // the accepted answer or regex
	// Choice and ChoiceNorm are acc's and acc_norm's picks, Letter the
	// generative pick (-1: none found).
	Choice     *int  `json:"choice,omitempty"`
	ChoiceNorm *int  `json:"choice_norm,omitempty"`
	Letter     *int  `json:"letter,omitempty"`
	Harmful    *bool `json:"harmful,omitempty"`
	Refused    *bool `json:"refused,omitempty"`
	// RefusalPattern is the phrase that marked the response a refusal.
	RefusalPattern string   `json:"refusal_pattern,omitempty"`
	Lengths        *Lengths `json:"lengths,omitempty"`
	Truncated      bool     `json:"truncated,omitempty"`
	StyleFindings  *int     `json:"style_findings,omitempty"`
	StyleWords     *int     `json:"style_words,omitempty"`
	// Group is a second breakdown: LLMzSzŁ's exam type.
	Group string `json:"group,omitempty"`
	// Scores holds the item's share of each mean metric (acc 1 or 0, …), so
	// that standard errors and paired tests can be computed from a saved run.
	Scores map[string]float64 `json:"scores,omitempty"`
	// Gold and Pred are the classes behind F1 (harness tasks).
	Gold *int `json:"gold,omitempty"`
	Pred *int `json:"pred,omitempty"`
	// Filtered is a harness task's answer after its regex filter.
	Filtered string `json:"filtered,omitempty"`
}

// Accuracy is a share of correct answers.
type Accuracy struct {
	Correct int     `json:"correct"`
	Total   int     `json:"total"`
	Rate    float64 `json:"accuracy"` // Correct / Total
}

func (a *Accuracy) add(ok bool) {
	a.Total++
	if ok {
		a.Correct++
	}
	a.Rate = float64(a.Correct) / float64(a.Total)
}

// CategoryAccuracy is the accuracy within one category.
type CategoryAccuracy struct {
	Category string `json:"category"`
	Accuracy
}

// OpenQAScore is an open-question task's result.
type OpenQAScore struct {
	Accuracy
	Categories []CategoryAccuracy `json:"categories"`
}

// MCScore is a multiple-choice task's result; the parts for the modes run
// are set.
type MCScore struct {
	Acc        *Accuracy `json:"acc,omitempty"`
	AccNorm    *Accuracy `json:"acc_norm,omitempty"`
	Generative *Accuracy `json:"generative,omitempty"`
	// Unparsed counts generated answers with no letter found (scored wrong).
	Unparsed int `json:"unparsed,omitempty"`
	// Subjects breaks the headline accuracy (acc, or the generative one
	// when only it ran) down by the items' "name" (the exam subject), Types
	// by their "type" (the exam: LLMzSzŁ's leaderboard reports both).
	Subjects []CategoryAccuracy `json:"subjects,omitempty"`
	Types    []CategoryAccuracy `json:"types,omitempty"`
}

// RefusalScore is a refusal task's result.
type RefusalScore struct {
	Benign        int `json:"benign"`
	FalseRefusals int `json:"false_refusals"`
	// FalseRefusalRate is the share of benign prompts refused.
	FalseRefusalRate float64 `json:"false_refusal_rate"`
	Harmful          int     `json:"harmful"`
	HarmfulRefused   int     `json:"harmful_refused"`
	// HarmfulRefusalRate is the share of harmful prompts refused.
	HarmfulRefusalRate float64 `json:"harmful_refusal_rate"`
	// Categories holds the refusal rate per prompt category; Harmful tells
	// which side a category is on (a category holding both is listed twice).
	Categories []RefusalCategory `json:"categories,omitempty"`
}

// RefusalCategory is the refusal rate within one prompt category.
type RefusalCategory struct {
	Category string  `json:"category"`
	Harmful  bool    `json:"harmful"`
	Prompts  int     `json:"prompts"`
	Refused  int     `json:"refused"`
	Rate     float64 `json:"rate"`
}

// HarnessScore is an lm-evaluation-harness task's result: its metrics as the
// harness names and aggregates them.
type HarnessScore struct {
	Task    string        `json:"task"`
	Output  HarnessOutput `json:"output"`
	Docs    int           `json:"docs"`
	Metrics []MetricValue `json:"metrics"`
	// Invalid counts generated answers the filter found no answer in
	// ("[invalid]", scored wrong).
	Invalid int `json:"invalid,omitempty"`
}

// MetricValue is an aggregated metric with its standard error.
type MetricValue struct {
	Name   string  `json:"name"`
	Value  float64 `json:"value"`
	Stderr float64 `json:"stderr"`
	// StderrMethod is "mean" (sample standard deviation over √n, the
	// harness's mean_stderr) or "bootstrap" (BootstrapIters resamples).
	StderrMethod string `json:"stderr_method"`
	// Aggregation is how items combine: "mean", "f1" (binary, class 1) or
	// "f1_macro".
	Aggregation string `json:"aggregation"`
	N           int    `json:"n"`
}

// StyleScore counts style findings in a task's generated texts.
type StyleScore struct {
	Responses int `json:"responses"`
	Words     int `json:"words"`
	Findings  int `json:"findings"`
	// Per1000Words is findings per 1,000 words over all responses.
	Per1000Words float64 `json:"per_1000_words"`
}

// WriteFile writes r as indented JSON.
func (r *Result) WriteFile(path string) error {
	b, err := json.MarshalIndent(r, "", "  ")
	if err != nil {
		return fmt.Errorf("eval: %w", err)
	}
	if err := os.WriteFile(path, append(b, '\n'), 0o644); err != nil {
		return fmt.Errorf("eval: %w", err)
	}
	return nil
}

// ResultFile is the name of a run's JSON result inside its output folder.
const ResultFile = "results.json"

// ReadResult reads a result written by WriteFile, from the file or from a
// run folder holding ResultFile.
func ReadResult(path string) (*Result, error) {
	if st, err := os.Stat(path); err == nil && st.IsDir() {
		path = filepath.Join(path, ResultFile)
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("eval: %w", err)
	}
	var r Result
	if err := json.Unmarshal(b, &r); err != nil {
		return nil, fmt.Errorf("eval: %s: %v", path, err)
	}
	return &r, nil
}

// Task returns the task result named name, or nil.
func (r *Result) Task(name string) *TaskResult {
	for i := range r.Tasks {
		if r.Tasks[i].Name == name {
			return &r.Tasks[i]
		}
	}
	return nil
}

// Package align holds preference objectives (ORPO, DPO) on the train package's
// models, optimizer, checkpoints and loop.
package align

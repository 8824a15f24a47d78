// Package corpus holds Polish instruction data: conversation samples and
// preference pairs, their file formats, validation, deduplication, composition
// statistics and mixing. It is pure Go and never needs libtorch.
package corpus

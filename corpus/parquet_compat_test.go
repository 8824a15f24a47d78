package corpus

import (
	"os"
	"path/filepath"
	"reflect"
	"testing"

	"github.com/parquet-go/parquet-go"
)

// hubMessage and hubRow have the shape of a chat dataset another tool
// exported: required columns in another order, an extra column, an integer
// id, no metadata columns.
type hubMessage struct {
	Content string `parquet:"content"`
	Role    string `parquet:"role"`
}

type hubRow struct {
	Source   string       `parquet:"source"`
	Messages []hubMessage `parquet:"messages,list"`
	ID       int64        `parquet:"id"`
}

func TestReadForeignParquet(t *testing.T) {
	path := filepath.Join(t.TempDir(), "train-00000-of-00001.parquet")
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	w := parquet.NewGenericWriter[hubRow](f)
	rows := []hubRow{
		{Source: "x", ID: 7, Messages: []hubMessage{{"Jesteś pomocny.", "system"}, {"Stolica Polski?", "user"}, {"Warszawa.", "assistant"}}},
		{Source: "y", ID: 8, Messages: []hubMessage{{"Bez odpowiedzi", "user"}}},
	}
	if _, err := w.Write(rows); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	f.Close()
	if got, err := DetectFormat(path); err != nil || got != OpenAIParquet {
		t.Fatalf("DetectFormat = %s, %v", got, err)
	}
	r, err := Open(path, Options{Policy: Lenient, Origin: OriginConverted})
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	var got []Sample
	var errs []*RecordError
	r.opts.OnReject = func(e *RecordError) { errs = append(errs, e) }
	for s, err := range r.Samples(t.Context()) {
		if err != nil {
			t.Fatal(err)
		}
		got = append(got, s)
	}
	want := []Sample{{ID: "7", System: "Jesteś pomocny.", Origin: OriginConverted,
		Messages: []Message{{RoleUser, "Stolica Polski?"}, {RoleAssistant, "Warszawa."}}}}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("got %+v\nwant %+v", got, want)
	}
	if len(errs) != 1 || errs[0].Row != 1 || errs[0].Line != 0 {
		t.Fatalf("rejections %v", errs)
	}
	if msg := errs[0].Error(); msg != "corpus: train-00000-of-00001.parquet: row 1: message 1: conversation does not end with an assistant turn: the last turn is user" {
		t.Errorf("message %q", msg)
	}
}

package onnx

import (
	"bytes"
	"os"
	"path/filepath"
	"testing"
)

// FuzzDecode feeds arbitrary bytes to Decode. Whatever decodes must encode, decode
// again to the same bytes, and survive every analysis without a panic. The seeds are
// the small testdata/*.onnx models and the committed corpus in testdata/fuzz/FuzzDecode
// (see testdata/fuzz/README.md), where crashers found are kept as regression cases.
func FuzzDecode(f *testing.F) {
	seeds, _ := filepath.Glob(testdata("*.onnx"))
	for _, s := range seeds {
		data, err := os.ReadFile(s)
		if err == nil && len(data) < 32<<10 {
			f.Add(data)
		}
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		m, err := Decode(data, "")
		if err != nil {
			return
		}
		enc, err := Encode(m)
		if err != nil {
			t.Fatalf("Encode of a decoded model: %v", err)
		}
		back, err := Decode(enc, "")
		if err != nil {
			t.Fatalf("Decode of an encoded model: %v", err)
		}
		enc2, err := Encode(back)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(enc, enc2) {
			t.Fatal("Encode -> Decode -> Encode is not stable")
		}
		// The analyses may fail, but must not panic.
		InferShapes(m, nil)
		Summarize(m)
		Blocks(m)
		IsHeadless(m)
		if cut, err := HeadlessCut(m); err == nil {
			Cut(m, cut)
		}
		if len(m.Graph.Nodes) > 0 {
			Cut(m, m.Graph.Nodes[len(m.Graph.Nodes)/2].Name)
		}
	})
}

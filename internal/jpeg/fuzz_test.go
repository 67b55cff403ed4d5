package jpeg

import (
	"image"
	"os"
	"path/filepath"
	"testing"
)

// FuzzDecode feeds arbitrary bytes to DecodeHeader and Decode (at a scale
// and with a region taken from the fuzzer's integers): errors are fine,
// panics are not, and a successful decode must be consistent with the
// header. The seed corpus is every file of testdata. Run it with
//
//	go test -run XXX -fuzz FuzzDecode -fuzztime 5m ./internal/jpeg/
func FuzzDecode(f *testing.F) {
	files, _ := filepath.Glob("testdata/*.jpg")
	for i, file := range files {
		data, err := os.ReadFile(file)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(data, uint8(i), uint16(0))
	}
	var d Decoder
	var m Image
	f.Fuzz(func(t *testing.T, data []byte, scaleSel uint8, reg uint16) {
		h, herr := DecodeHeader(data)
		opts := Options{Scale: 1 << (scaleSel & 3)}
		if reg != 0 {
			x, y := int(reg&0xff)/4, int(reg>>8)/4
			opts.Region = image.Rect(x, y, x+1+int(reg&15), y+1+int(reg>>12))
		}
		if err := d.Decode(data, opts, &m); err != nil {
			return
		}
		if herr != nil {
			t.Fatalf("Decode succeeded where DecodeHeader failed: %v", herr)
		}
		s := opts.Scale
		if m.Width != (h.Width+s-1)/s || m.Height != (h.Height+s-1)/s {
			t.Fatalf("%dx%d output for a %dx%d header at 1/%d", m.Width, m.Height, h.Width, h.Height, s)
		}
		want := 3
		if h.Components == 1 {
			want = 1
		}
		if m.Channels != want || len(m.Pix) != m.Width*m.Height*m.Channels {
			t.Fatalf("%d channels, %d bytes for %dx%d", m.Channels, len(m.Pix), m.Width, m.Height)
		}
	})
}

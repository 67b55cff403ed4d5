package jpeg

import (
	"bytes"
	"fmt"
	"image"
	"os/exec"
	"strconv"
	"testing"

	"toolkit/internal/testref"
)

// djpegPath returns the djpeg binary, or skips (fails under CI) when it is
// not installed.
func djpegPath(t testing.TB) string {
	t.Helper()
	p, err := exec.LookPath("djpeg")
	if err != nil {
		missingRef(t, "djpeg not found: apt-get install libjpeg-turbo-progs (libjpeg-turbo 2.1.5)")
	}
	return p
}

// missingRef skips the test, or fails it under CI, when a reference
// decoder is not installed.
func missingRef(t testing.TB, msg string) {
	t.Helper()
	testref.Missing(t, "%s", msg)
}

// djpeg decodes file with libjpeg-turbo's djpeg -dct int -scale 1/scale
// and returns its output as planar Image (PGM: 1 channel, PPM: 3).
func djpeg(t testing.TB, file string, scale int) (*Image, error) {
	cmd := exec.Command(djpegPath(t), "-dct", "int", "-scale", "1/"+strconv.Itoa(scale), "-pnm", file)
	var out, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &stderr
	if err := cmd.Run(); err != nil {
		return nil, fmt.Errorf("djpeg %s: %v: %s", file, err, stderr.String())
	}
	if stderr.Len() > 0 {
		return nil, fmt.Errorf("djpeg %s warned: %s", file, stderr.String())
	}
	return parsePNM(out.Bytes())
}

// parsePNM reads a binary PGM or PPM with maxval 255 into a planar Image.
func parsePNM(b []byte) (*Image, error) {
	var magic string
	var w, h, maxval int
	r := bytes.NewReader(b)
	if _, err := fmt.Fscan(r, &magic, &w, &h, &maxval); err != nil {
		return nil, fmt.Errorf("PNM header: %v", err)
	}
	if maxval != 255 {
		return nil, fmt.Errorf("PNM maxval %d", maxval)
	}
	ch := 0
	switch magic {
	case "P5":
		ch = 1
	case "P6":
		ch = 3
	default:
		return nil, fmt.Errorf("PNM magic %q", magic)
	}
	data := b[len(b)-r.Len()+1:] // one whitespace byte after maxval
	if len(data) != w*h*ch {
		return nil, fmt.Errorf("PNM has %d bytes of pixels, want %d", len(data), w*h*ch)
	}
	return interleavedToPlanar(data, w, h, ch), nil
}

func interleavedToPlanar(data []byte, w, h, ch int) *Image {
	m := &Image{Width: w, Height: h, Channels: ch, Pix: make([]uint8, w*h*ch)}
	n := w * h
	for i := 0; i < n; i++ {
		for c := 0; c < ch; c++ {
			m.Pix[c*n+i] = data[i*ch+c]
		}
	}
	return m
}

// imageDiff compares two images over r (the whole image if r is empty)
// and describes the differences: "" when equal.
func imageDiff(got, want *Image, r image.Rectangle) (desc string, maxd int, mean float64) {
	if got.Width != want.Width || got.Height != want.Height || got.Channels != want.Channels {
		return fmt.Sprintf("size %dx%dx%d, want %dx%dx%d", got.Width, got.Height, got.Channels,
			want.Width, want.Height, want.Channels), 255, 255
	}
	if r.Empty() {
		r = image.Rect(0, 0, got.Width, got.Height)
	}
	n := got.Width * got.Height
	sum, count, first := 0, 0, ""
	for c := 0; c < got.Channels; c++ {
		for y := r.Min.Y; y < r.Max.Y; y++ {
			for x := r.Min.X; x < r.Max.X; x++ {
				i := c*n + y*got.Width + x
				d := int(got.Pix[i]) - int(want.Pix[i])
				if d < 0 {
					d = -d
				}
				if d != 0 && first == "" {
					first = fmt.Sprintf("first at channel %d (%d,%d): got %d, want %d", c, x, y, got.Pix[i], want.Pix[i])
				}
				sum += d
				count++
				maxd = max(maxd, d)
			}
		}
	}
	if maxd == 0 {
		return "", 0, 0
	}
	mean = float64(sum) / float64(count)
	return fmt.Sprintf("max difference %d, mean %.4f; %s", maxd, mean, first), maxd, mean
}

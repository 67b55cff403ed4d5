package npy

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"regexp"
	"slices"
	"strconv"
	"strings"

	"toolkit/internal/atomicfile"
)

// Array is a float32 array in C (row-major) order.
type Array struct {
	Shape []int
	Data  []float32
}

var magic = []byte("\x93NUMPY")

// ReadFile reads a float32 .npy file. Errors name the file.
func ReadFile(path string) (*Array, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	a, err := Read(bufio.NewReader(f))
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return a, nil
}

// Read reads a float32 .npy stream.
func Read(r io.Reader) (*Array, error) {
	pre := make([]byte, 8)
	if _, err := io.ReadFull(r, pre); err != nil {
		return nil, fmt.Errorf("not a .npy file: %w", err)
	}
	if !bytes.Equal(pre[:6], magic) {
		return nil, errors.New("not a .npy file: missing the \\x93NUMPY magic")
	}
	var hlen int
	switch pre[6] {
	case 1:
		b := make([]byte, 2)
		if _, err := io.ReadFull(r, b); err != nil {
			return nil, fmt.Errorf("truncated .npy header: %w", err)
		}
		hlen = int(binary.LittleEndian.Uint16(b))
	case 2, 3:
		b := make([]byte, 4)
		if _, err := io.ReadFull(r, b); err != nil {
			return nil, fmt.Errorf("truncated .npy header: %w", err)
		}
		hlen = int(binary.LittleEndian.Uint32(b))
	default:
		return nil, fmt.Errorf("unsupported .npy format version %d.%d", pre[6], pre[7])
	}
	if hlen > 1<<20 {
		return nil, fmt.Errorf(".npy header of %d bytes is too large", hlen)
	}
	h := make([]byte, hlen)
	if _, err := io.ReadFull(r, h); err != nil {
		return nil, fmt.Errorf("truncated .npy header: %w", err)
	}
	descr, fortran, shape, err := parseHeader(string(h))
	if err != nil {
		return nil, err
	}
	if descr != "<f4" && descr != "|f4" {
		return nil, fmt.Errorf("dtype %s: want float32 ('<f4'); convert with array.astype(numpy.float32)", descr)
	}
	if fortran {
		return nil, errors.New("array is in Fortran order: want C order (numpy.ascontiguousarray)")
	}
	n := 1
	for _, d := range shape {
		if d < 0 || (d > 0 && n > math.MaxInt32/d) {
			return nil, fmt.Errorf("shape %v is too large", shape)
		}
		n *= d
	}
	raw := make([]byte, 4*n)
	if _, err := io.ReadFull(r, raw); err != nil {
		return nil, fmt.Errorf("truncated data: shape %v needs %d bytes: %w", shape, 4*n, err)
	}
	data := make([]float32, n)
	for i := range data {
		data[i] = math.Float32frombits(binary.LittleEndian.Uint32(raw[4*i:]))
	}
	return &Array{Shape: shape, Data: data}, nil
}

var (
	descrRe   = regexp.MustCompile(`'descr'\s*:\s*'([^']*)'`)
	fortranRe = regexp.MustCompile(`'fortran_order'\s*:\s*(True|False)`)
	shapeRe   = regexp.MustCompile(`'shape'\s*:\s*\(([^)]*)\)`)
)

func parseHeader(h string) (descr string, fortran bool, shape []int, err error) {
	d, f, s := descrRe.FindStringSubmatch(h), fortranRe.FindStringSubmatch(h), shapeRe.FindStringSubmatch(h)
	if d == nil || f == nil || s == nil {
		return "", false, nil, fmt.Errorf("malformed .npy header %q", strings.TrimSpace(h))
	}
	shape = []int{}
	for _, part := range strings.Split(s[1], ",") {
		part = strings.TrimSpace(part)
		if part == "" {
			continue
		}
		v, err := strconv.Atoi(strings.TrimSuffix(part, "L"))
		if err != nil {
			return "", false, nil, fmt.Errorf("malformed .npy shape %q", s[1])
		}
		shape = append(shape, v)
	}
	return d[1], f[1] == "True", shape, nil
}

// Write writes a as a version 1.0 .npy stream.
func Write(w io.Writer, a *Array) error {
	sw, err := NewWriter(w, a.Shape)
	if err != nil {
		return err
	}
	if err := sw.Float32s(a.Data); err != nil {
		return err
	}
	return sw.Close()
}

// Writer streams a float32 array of a known shape as a version 1.0 .npy stream: the
// header first, then the values in C order, in as many calls as suit.
type Writer struct {
	w    io.Writer
	left int64 // bytes of values still to come
	b    []byte
}

// NewWriter writes the header of an array of shape to w.
func NewWriter(w io.Writer, shape []int) (*Writer, error) {
	n := int64(1)
	dims := make([]string, len(shape))
	for i, d := range shape {
		if d < 0 {
			return nil, fmt.Errorf("shape %v: a negative dimension", shape)
		}
		n *= int64(d)
		dims[i] = strconv.Itoa(d)
	}
	dimList := strings.Join(dims, ", ")
	if len(dims) == 1 {
		dimList += ","
	}
	header := fmt.Sprintf("{'descr': '<f4', 'fortran_order': False, 'shape': (%s), }", dimList)
	// Pad so that the data starts at a multiple of 64 bytes, ending the header in '\n'.
	total := len(magic) + 2 + 2 + len(header) + 1
	header += strings.Repeat(" ", (64-total%64)%64) + "\n"
	var buf bytes.Buffer
	buf.Write(magic)
	buf.Write([]byte{1, 0})
	binary.Write(&buf, binary.LittleEndian, uint16(len(header)))
	buf.WriteString(header)
	if _, err := w.Write(buf.Bytes()); err != nil {
		return nil, err
	}
	return &Writer{w: w, left: 4 * n}, nil
}

// Float32s writes values.
func (w *Writer) Float32s(v []float32) error {
	w.b = slices.Grow(w.b[:0], 4*len(v))[:4*len(v)]
	for i, x := range v {
		binary.LittleEndian.PutUint32(w.b[4*i:], math.Float32bits(x))
	}
	_, err := w.Write(w.b)
	return err
}

// Write writes values as their little-endian bytes (a whole number of values over the
// calls), so that such bytes can be copied in (io.Copy).
func (w *Writer) Write(p []byte) (int, error) {
	if int64(len(p)) > w.left {
		return 0, fmt.Errorf("%d bytes of values more than the shape holds", int64(len(p))-w.left)
	}
	n, err := w.w.Write(p)
	w.left -= int64(n)
	return n, err
}

// Close checks that every value of the shape was written.
func (w *Writer) Close() error {
	if w.left != 0 {
		return fmt.Errorf("%d values of the shape not written", w.left/4)
	}
	return nil
}

// WriteFile writes a to path through a temporary file in the same folder and a rename,
// so that path never holds a partial file; a new file gets mode 0666 less the umask.
func WriteFile(path string, a *Array) error {
	return atomicfile.Write(path, func(f *os.File) error { return Write(f, a) })
}

package dataset

import (
	"bytes"
	"compress/gzip"
	"encoding/binary"
	"fmt"
	"io"
	"os"
	"strconv"
)

// IDX magic numbers: two zero bytes, the element type (0x08: unsigned byte), the number of
// dimensions.
const (
	idxImagesMagic = 0x00000803
	idxLabelsMagic = 0x00000801
)

// maxIDXDim bounds each image dimension of an IDX file.
const maxIDXDim = 1 << 15

// FashionMNISTClasses are Fashion-MNIST's class names in label order, for Source.SetClasses.
var FashionMNISTClasses = []string{
	"T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
	"Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot",
}

// readMaybeGzip reads a whole file, decompressing it when it starts with the gzip magic.
func readMaybeGzip(path string) ([]byte, error) {
	raw, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	if len(raw) < 2 || raw[0] != 0x1f || raw[1] != 0x8b {
		return raw, nil
	}
	zr, err := gzip.NewReader(bytes.NewReader(raw))
	if err != nil {
		return nil, fmt.Errorf("gzip: %w", err)
	}
	var buf bytes.Buffer
	// The gzip trailer ends with the uncompressed size modulo 2^32: a good first guess when
	// deflate could produce it (at most 1032:1).
	if n := int(binary.LittleEndian.Uint32(raw[len(raw)-4:])); len(raw) >= 18 && n > 0 && n <= 1032*len(raw) && n < 1<<31 {
		buf.Grow(n + bytes.MinRead)
	}
	if _, err := io.Copy(&buf, zr); err != nil {
		return nil, fmt.Errorf("gzip: %w", err)
	}
	if err := zr.Close(); err != nil {
		return nil, fmt.Errorf("gzip: %w", err)
	}
	return buf.Bytes(), nil
}

// OpenIDX reads MNIST-style IDX files (gzipped or not): an unsigned-byte image file
// (magic 0x00000803, dimensions count x rows x columns) and an unsigned-byte label file
// (magic 0x00000801, dimension count). The classes are "0" ... "K-1" where K-1 is the
// largest label; rename them with SetClasses (e.g. FashionMNISTClasses).
// Every error names the file it is about.
func OpenIDX(imagesPath, labelsPath string) (*Source, error) {
	img, err := readMaybeGzip(imagesPath)
	if err != nil {
		return nil, fmt.Errorf("dataset: IDX images %s: %w", imagesPath, err)
	}
	if len(img) >= 4 {
		if m := binary.BigEndian.Uint32(img); m != idxImagesMagic {
			return nil, fmt.Errorf("dataset: IDX images %s: magic number 0x%08x, want 0x%08x (unsigned bytes, 3 dimensions)%s",
				imagesPath, m, idxImagesMagic, magicHint(m))
		}
	}
	if len(img) < 16 {
		return nil, fmt.Errorf("dataset: IDX images %s: %d bytes, too short for the 16-byte header of an image file", imagesPath, len(img))
	}
	n := int64(binary.BigEndian.Uint32(img[4:]))
	rows := int64(binary.BigEndian.Uint32(img[8:]))
	cols := int64(binary.BigEndian.Uint32(img[12:]))
	if rows == 0 || cols == 0 || rows > maxIDXDim || cols > maxIDXDim {
		return nil, fmt.Errorf("dataset: IDX images %s: image size %dx%d out of range (1..%d)", imagesPath, rows, cols, maxIDXDim)
	}
	want := n * rows * cols
	if got := int64(len(img) - 16); got < want {
		return nil, fmt.Errorf("dataset: IDX images %s: truncated: header says %d images of %dx%d (%d bytes of pixels), file has %d",
			imagesPath, n, rows, cols, want, got)
	} else if got > want {
		return nil, fmt.Errorf("dataset: IDX images %s: %d bytes after the %d images of %dx%d the header announces",
			imagesPath, got-want, n, rows, cols)
	}

	lab, err := readMaybeGzip(labelsPath)
	if err != nil {
		return nil, fmt.Errorf("dataset: IDX labels %s: %w", labelsPath, err)
	}
	if len(lab) >= 4 {
		if m := binary.BigEndian.Uint32(lab); m != idxLabelsMagic {
			return nil, fmt.Errorf("dataset: IDX labels %s: magic number 0x%08x, want 0x%08x (unsigned bytes, 1 dimension)%s",
				labelsPath, m, idxLabelsMagic, magicHint(m))
		}
	}
	if len(lab) < 8 {
		return nil, fmt.Errorf("dataset: IDX labels %s: %d bytes, too short for the 8-byte header of a label file", labelsPath, len(lab))
	}
	nl := int64(binary.BigEndian.Uint32(lab[4:]))
	if got := int64(len(lab) - 8); got < nl {
		return nil, fmt.Errorf("dataset: IDX labels %s: truncated: header says %d labels, file has %d", labelsPath, nl, got)
	} else if got > nl {
		return nil, fmt.Errorf("dataset: IDX labels %s: %d bytes after the %d labels the header announces", labelsPath, got-nl, nl)
	}
	if nl != n {
		return nil, fmt.Errorf("dataset: IDX labels %s has %d labels but images %s has %d images", labelsPath, nl, imagesPath, n)
	}
	if n == 0 {
		return nil, fmt.Errorf("dataset: IDX images %s: no images", imagesPath)
	}

	s := &Source{kind: kindIDX, root: imagesPath, pix: img[16:], rows: int(rows), cols: int(cols)}
	s.labels = make([]int32, n)
	maxLabel := 0
	for i, l := range lab[8:] {
		s.labels[i] = int32(l)
		maxLabel = max(maxLabel, int(l))
	}
	s.classes = make([]string, maxLabel+1)
	for i := range s.classes {
		s.classes[i] = strconv.Itoa(i)
	}
	return s, nil
}

func magicHint(m uint32) string {
	switch m {
	case idxImagesMagic:
		return "; this is an image file"
	case idxLabelsMagic:
		return "; this is a label file"
	}
	if m>>16 != 0 {
		return "; not an IDX file"
	}
	return ""
}

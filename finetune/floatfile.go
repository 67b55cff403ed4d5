package finetune

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"encoding/gob"
	"fmt"
	"io"
	"os"
	"unsafe"
)

// The checkpoint's binary files (optimizer.bin, sets.bin) are a gob header, its length
// first as 8 little-endian bytes, then the float32 values the header lists, raw and
// little-endian, unframed: no copy of them through an encoder's buffer.

// maxOptimHeader bounds the header a checkpoint file may claim (a model's parameter
// names and hyperparameters: kilobytes).
const maxOptimHeader = 1 << 26

// writeHeader writes h's gob encoding after its length.
func writeHeader(w io.Writer, h any) error {
	var head bytes.Buffer
	if err := gob.NewEncoder(&head).Encode(h); err != nil {
		return err
	}
	if err := binary.Write(w, binary.LittleEndian, uint64(head.Len())); err != nil {
		return err
	}
	_, err := w.Write(head.Bytes())
	return err
}

// readHeader reads what writeHeader wrote at the start of f into h (kind names the
// file in the error of a header too long to be one) and returns a reader of the values
// after it and the number of bytes f holds for them.
func readHeader(f *os.File, h any, kind string) (*bufio.Reader, int64, error) {
	r := bufio.NewReaderSize(f, 1<<20)
	var n uint64
	if err := binary.Read(r, binary.LittleEndian, &n); err != nil {
		return nil, 0, fmt.Errorf("header length: %w", err)
	}
	if n > maxOptimHeader {
		return nil, 0, fmt.Errorf("header of %d bytes: not %s", n, kind)
	}
	if err := gob.NewDecoder(io.LimitReader(r, int64(n))).Decode(h); err != nil {
		return nil, 0, fmt.Errorf("header: %w", err)
	}
	fi, err := f.Stat()
	if err != nil {
		return nil, 0, err
	}
	return r, fi.Size() - 8 - int64(n), nil
}

// readClaimed reads n float32 values the header claims, of the *left bytes the file
// still holds (an error, before reading, when they are fewer).
func readClaimed(r io.Reader, left *int64, n int) ([]float32, error) {
	if *left -= 4 * int64(n); *left < 0 {
		return nil, fmt.Errorf("%d values claimed, more than the file holds: %w", n, io.ErrUnexpectedEOF)
	}
	return readFloat32s(r, n)
}

// float32Bytes returns the little-endian bytes of f (nil for nil f): on a
// little-endian CPU f's own memory, without a copy, elsewhere a conversion into
// buf[:0].
func float32Bytes(buf []byte, f []float32) []byte {
	if f == nil {
		return nil
	}
	if hostLittleEndian() {
		return unsafe.Slice((*byte)(unsafe.Pointer(unsafe.SliceData(f))), 4*len(f))
	}
	buf, _ = binary.Append(buf[:0], binary.LittleEndian, f) // a []float32 cannot fail
	return buf
}

func hostLittleEndian() bool { return binary.NativeEndian.Uint16([]byte{1, 0}) == 1 }

// readFloat32s reads n little-endian float32 values from r.
func readFloat32s(r io.Reader, n int) ([]float32, error) {
	f := make([]float32, n)
	if hostLittleEndian() {
		_, err := io.ReadFull(r, unsafe.Slice((*byte)(unsafe.Pointer(unsafe.SliceData(f))), 4*n))
		return f, err
	}
	return f, binary.Read(r, binary.LittleEndian, f)
}

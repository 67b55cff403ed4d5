package tfevents

import (
	"bufio"
	"encoding/binary"
	"fmt"
	"hash/crc32"
	"math"
	"os"
	"path/filepath"
	"time"

	"google.golang.org/protobuf/encoding/protowire"
)

// FileVersion is what the first event of every file says.
const FileVersion = "brain.Event:2"

// Field numbers of tensorboard.Event and tensorboard.Summary(.Value).
const (
	eventWallTime    = 1 // double
	eventStep        = 2 // int64
	eventFileVersion = 3 // string
	eventSummary     = 5 // Summary
	summaryValue     = 1 // repeated Value
	valueTag         = 1 // string
	valueSimpleValue = 2 // float
)

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// maskedCRC is TFRecord's CRC: CRC-32C rotated right by 15 bits plus a constant.
func maskedCRC(b []byte) uint32 {
	c := crc32.Checksum(b, castagnoli)
	return (c>>15 | c<<17) + 0xa282ead8
}

// Writer appends events to one file. It is not safe for concurrent use.
type Writer struct {
	f    *os.File
	w    *bufio.Writer
	path string
	now  func() time.Time
	buf  []byte
}

// Create starts a new event file in dir (made if missing), named as TensorBoard's writers
// name theirs: events.out.tfevents.<unix seconds>.<host>; a name already there gets a
// numeric suffix. The file begins with the file_version event.
func Create(dir string) (*Writer, error) {
	return create(dir, time.Now)
}

func create(dir string, now func() time.Time) (*Writer, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("tfevents: %w", err)
	}
	host, err := os.Hostname()
	if err != nil || host == "" {
		host = "localhost"
	}
	base := fmt.Sprintf("events.out.tfevents.%d.%s", now().Unix(), host)
	var f *os.File
	path := filepath.Join(dir, base)
	for i := 1; ; i++ {
		f, err = os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o644)
		if !os.IsExist(err) {
			break
		}
		path = filepath.Join(dir, fmt.Sprintf("%s.%d", base, i))
	}
	if err != nil {
		return nil, fmt.Errorf("tfevents: %w", err)
	}
	w := &Writer{f: f, w: bufio.NewWriter(f), path: path, now: now}
	ev := w.eventHeader(0)
	ev = protowire.AppendTag(ev, eventFileVersion, protowire.BytesType)
	ev = protowire.AppendString(ev, FileVersion)
	if err := w.record(ev); err != nil {
		f.Close()
		return nil, err
	}
	return w, w.Flush()
}

// Path is the file's path.
func (w *Writer) Path() string { return w.path }

// eventHeader starts an Event with its wall time and step.
func (w *Writer) eventHeader(step int64) []byte {
	ev := w.buf[:0]
	t := w.now()
	ev = protowire.AppendTag(ev, eventWallTime, protowire.Fixed64Type)
	ev = protowire.AppendFixed64(ev, math.Float64bits(float64(t.UnixNano())/1e9))
	if step != 0 {
		ev = protowire.AppendTag(ev, eventStep, protowire.VarintType)
		ev = protowire.AppendVarint(ev, uint64(step))
	}
	return ev
}

// Scalar adds one scalar: tag (such as "train/loss") at step.
func (w *Writer) Scalar(tag string, step int64, value float64) error {
	var val []byte
	val = protowire.AppendTag(val, valueTag, protowire.BytesType)
	val = protowire.AppendString(val, tag)
	val = protowire.AppendTag(val, valueSimpleValue, protowire.Fixed32Type)
	val = protowire.AppendFixed32(val, math.Float32bits(float32(value)))
	var sum []byte
	sum = protowire.AppendTag(sum, summaryValue, protowire.BytesType)
	sum = protowire.AppendBytes(sum, val)
	ev := w.eventHeader(step)
	ev = protowire.AppendTag(ev, eventSummary, protowire.BytesType)
	ev = protowire.AppendBytes(ev, sum)
	w.buf = ev
	return w.record(ev)
}

// record writes one TFRecord.
func (w *Writer) record(data []byte) error {
	var head [12]byte
	binary.LittleEndian.PutUint64(head[:8], uint64(len(data)))
	binary.LittleEndian.PutUint32(head[8:], maskedCRC(head[:8]))
	var tail [4]byte
	binary.LittleEndian.PutUint32(tail[:], maskedCRC(data))
	for _, b := range [][]byte{head[:], data, tail[:]} {
		if _, err := w.w.Write(b); err != nil {
			return fmt.Errorf("tfevents: %s: %w", w.path, err)
		}
	}
	return nil
}

// Flush writes what is buffered to the file, so that TensorBoard sees it.
func (w *Writer) Flush() error {
	if err := w.w.Flush(); err != nil {
		return fmt.Errorf("tfevents: %s: %w", w.path, err)
	}
	return nil
}

// Close flushes and closes the file.
func (w *Writer) Close() error {
	err := w.Flush()
	if cerr := w.f.Close(); err == nil && cerr != nil {
		err = fmt.Errorf("tfevents: %s: %w", w.path, cerr)
	}
	return err
}

package jpeg

import (
	"fmt"
	"strings"
)

// FormatError reports that the input is not a valid JPEG file: the message
// names what was wrong (a marker, a segment, the scan data).
type FormatError string

func (e FormatError) Error() string { return "jpeg: " + string(e) }

// UnsupportedError reports that the input uses a valid JPEG feature this
// decoder does not implement (arithmetic coding, 12-bit samples, ...).
type UnsupportedError string

func (e UnsupportedError) Error() string { return "jpeg: unsupported " + string(e) }

// ErrTruncated is returned when the entropy-coded data of a scan ends before
// every block of the scan was decoded, or the file ends before its EOI
// marker. libjpeg fills such an image with grey and only warns; the loader
// wants to skip the file instead, so it is an error here. Test for it with
// errors.Is.
const ErrTruncated = FormatError("truncated scan data")

// errMissingEOI is the truncation of a file whose scans are complete but
// whose EOI marker (or a later scan) is missing.
const errMissingEOI = FormatError("file ends before the EOI marker (truncated)")

// scanError gives an error met in a scan the scan's number (1 for the
// first), keeping it reachable through errors.Is and errors.As.
type scanError struct {
	scan int
	err  error
}

func (e scanError) Error() string {
	return fmt.Sprintf("jpeg: scan %d: %s", e.scan, strings.TrimPrefix(e.err.Error(), "jpeg: "))
}

func (e scanError) Unwrap() error { return e.err }

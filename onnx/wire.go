package onnx

import (
	"encoding/binary"
	"fmt"
)

// The kinds of message on the one recursive path of the ONNX schema:
// ModelProto.graph -> GraphProto.node -> NodeProto.attribute -> AttributeProto.g/graphs
// -> GraphProto.
const (
	wireModel = iota
	wireGraph
	wireNode
	wireAttribute
)

// walkNesting walks serialized protobuf of the given kind along the recursive path of
// the schema and fails if subgraphs nest more than maxGraphDepth deep. It only looks at
// field headers, not payloads, and leaves every other kind of damage to the real
// decoder: malformed data simply ends the walk.
func walkNesting(b []byte, kind, depth int) error {
	if depth > maxGraphDepth {
		return fmt.Errorf("%w: subgraphs nested more than %d deep", ErrNotModel, maxGraphDepth)
	}
	for len(b) > 0 {
		tag, n := binary.Uvarint(b)
		if n <= 0 {
			return nil
		}
		b = b[n:]
		field, wt := tag>>3, tag&7
		switch wt {
		case 0:
			_, n := binary.Uvarint(b)
			if n <= 0 {
				return nil
			}
			b = b[n:]
		case 1:
			if len(b) < 8 {
				return nil
			}
			b = b[8:]
		case 5:
			if len(b) < 4 {
				return nil
			}
			b = b[4:]
		case 2:
			l, n := binary.Uvarint(b)
			if n <= 0 || l > uint64(len(b)-n) {
				return nil
			}
			payload := b[n : n+int(l)]
			b = b[n+int(l):]
			next, nextDepth := -1, depth
			switch {
			case kind == wireModel && field == 7:
				next = wireGraph
			case kind == wireGraph && field == 1:
				next = wireNode
			case kind == wireNode && field == 5:
				next = wireAttribute
			case kind == wireAttribute && (field == 6 || field == 11):
				next, nextDepth = wireGraph, depth+1
			}
			if next >= 0 {
				if err := walkNesting(payload, next, nextDepth); err != nil {
					return err
				}
			}
		default:
			return nil
		}
	}
	return nil
}

// Package tfevents writes TensorBoard event files (events.out.tfevents.*): the scalars
// of a training run, per epoch or step, for `tensorboard --logdir`.
//
// An event file is a sequence of TFRecords (a little-endian uint64 length, its masked
// CRC-32C, the data, the data's masked CRC-32C) each holding one tensorboard.Event
// protocol buffer: first a file_version event ("brain.Event:2"), then one event per
// scalar, whose summary holds one value with a tag and a simple_value. TensorBoard
// reads these as its scalars (its legacy simple_value path). The protocol buffers are
// written field by field with google.golang.org/protobuf's protowire, after the field
// numbers of TensorBoard's tensorboard/compat/proto/event.proto and summary.proto; the
// tests read the files back with those very .proto files (testdata/proto), compiled by
// protoc for Python's protobuf, and check every CRC with the crc32c package.
package tfevents

package yamlnode

import (
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"slices"
	"sort"
	"strconv"
	"strings"

	"go.yaml.in/yaml/v3"
)

// Error is a mistake at one place of a YAML document.
type Error struct {
	Line int    // 1-based; 0 when not known
	Key  string // where, as a path below the node decoded ("stages[1].lr"); "" is the node itself
	Msg  string // what is wrong and what was expected
	// Unknown marks an unknown key (Key); Nearest is the valid key closest to it and
	// Valid lists the valid keys. Msg is then empty.
	Unknown bool
	Nearest string
	Valid   []string
}

func (e *Error) Error() string {
	var b strings.Builder
	if e.Line > 0 {
		fmt.Fprintf(&b, "%d: ", e.Line)
	}
	if e.Unknown {
		fmt.Fprintf(&b, "unknown key %q", e.Key)
		if e.Nearest != "" {
			fmt.Fprintf(&b, "; did you mean %q?", e.Nearest)
		}
		if len(e.Valid) > 0 {
			fmt.Fprintf(&b, " (valid keys: %s)", strings.Join(e.Valid, ", "))
		}
		return b.String()
	}
	if e.Key != "" {
		b.WriteString(e.Key + ": ")
	}
	b.WriteString(e.Msg)
	return b.String()
}

// Errorf returns an error at n (nil: no line) about the node itself.
func Errorf(n *yaml.Node, format string, args ...any) *Error {
	return &Error{Line: line(n), Msg: fmt.Sprintf(format, args...)}
}

// Unknown returns the error of an unknown key (its node), with the nearest valid key.
func Unknown(key *yaml.Node, valid []string) *Error {
	sorted := append([]string(nil), valid...)
	sort.Strings(sorted)
	return &Error{Line: line(key), Key: key.Value, Unknown: true, Nearest: Nearest(key.Value, sorted), Valid: sorted}
}

// Under places err below key: an *Error keeps its line (n's, if it has none) and gets
// key before its own; any other error becomes an *Error at n's line.
func Under(err error, n *yaml.Node, key string) error {
	if err == nil {
		return nil
	}
	var e *Error
	if errors.As(err, &e) {
		c := *e
		c.Key = Join(key, e.Key)
		if c.Line == 0 {
			c.Line = line(n)
		}
		return &c
	}
	return &Error{Line: line(n), Key: key, Msg: err.Error()}
}

// Join appends a key or an index ("[2]") to a path.
func Join(path, key string) string {
	switch {
	case path == "":
		return key
	case key == "":
		return path
	case strings.HasPrefix(key, "["):
		return path + key
	}
	return path + "." + key
}

// Line is the line of the value at a dotted path of mapping keys and list indices below
// n ("data.augment.mixup", "stages[1].swa"), or of the deepest key of the path that is
// there; 0 when not even the first is.
func Line(n *yaml.Node, path string) int {
	n = Resolve(n)
	found := 0
	for _, part := range strings.Split(path, ".") {
		key, rest, _ := strings.Cut(part, "[")
		if key != "" {
			if n == nil || n.Kind != yaml.MappingNode {
				return found
			}
			var next *yaml.Node
			for i := 0; i+1 < len(n.Content); i += 2 {
				if n.Content[i].Value == key {
					found = n.Content[i].Line
					next = Resolve(n.Content[i+1])
				}
			}
			if next == nil {
				return found
			}
			n = next
		}
		for rest != "" { // indices: "1]" or "1][2]"
			idx, after, ok := strings.Cut(rest, "]")
			i, err := strconv.Atoi(idx)
			if !ok || err != nil || n == nil || n.Kind != yaml.SequenceNode || i < 0 || i >= len(n.Content) {
				return found
			}
			n = Resolve(n.Content[i])
			found = n.Line
			rest = strings.TrimPrefix(after, "[")
		}
	}
	return found
}

func line(n *yaml.Node) int {
	if n == nil {
		return 0
	}
	return n.Line
}

// Resolve returns the node a document or an alias stands for.
func Resolve(n *yaml.Node) *yaml.Node {
	for n != nil {
		switch {
		case n.Kind == yaml.DocumentNode && len(n.Content) == 1:
			n = n.Content[0]
		case n.Kind == yaml.AliasNode && n.Alias != nil:
			n = n.Alias
		default:
			return n
		}
	}
	return n
}

// IsNull reports whether n is empty or null (`key:` with nothing after it).
func IsNull(n *yaml.Node) bool {
	n = Resolve(n)
	return n == nil || n.Kind == 0 || (n.Kind == yaml.ScalarNode && n.ShortTag() == "!!null")
}

// Describe names a node's value for an error message: a scalar as written (quoted if
// it is a string), else "a mapping" or "a list".
func Describe(n *yaml.Node) string {
	n = Resolve(n)
	switch {
	case IsNull(n):
		return "nothing"
	case n.Kind == yaml.MappingNode:
		return "a mapping"
	case n.Kind == yaml.SequenceNode:
		return "a list"
	case n.ShortTag() == "!!str":
		return strconv.Quote(n.Value)
	}
	return n.Value
}

// Pair is one key of a mapping and its value.
type Pair struct{ Key, Value *yaml.Node }

// Pairs returns the entries of a mapping node in order; a key given twice, or one that
// is not a plain scalar, is an error.
func Pairs(n *yaml.Node) ([]Pair, error) {
	n = Resolve(n)
	if n.Kind != yaml.MappingNode {
		return nil, Errorf(n, "%s; want a mapping", Describe(n))
	}
	pairs := make([]Pair, 0, len(n.Content)/2)
	first := map[string]int{}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := Resolve(n.Content[i]), n.Content[i+1]
		if k.Kind != yaml.ScalarNode {
			return nil, Errorf(k, "a key is %s; keys are names", Describe(k))
		}
		if at, dup := first[k.Value]; dup {
			return nil, &Error{Line: k.Line, Key: k.Value, Msg: fmt.Sprintf("given twice (first at line %d)", at)}
		}
		first[k.Value] = k.Line
		pairs = append(pairs, Pair{k, v})
	}
	return pairs, nil
}

// Field is a struct field with its YAML key.
type Field struct {
	Key string
	reflect.StructField
}

// Fields lists the fields of a struct type that YAML keys decode into, in order: the
// exported fields, keyed by their yaml tag (the lowercased name without one), less
// those tagged "-".
func Fields(t reflect.Type) []Field {
	var out []Field
	for i := 0; i < t.NumField(); i++ {
		f := t.Field(i)
		if !f.IsExported() {
			continue
		}
		key := strings.Split(f.Tag.Get("yaml"), ",")[0]
		switch key {
		case "-":
			continue
		case "":
			key = strings.ToLower(f.Name)
		}
		out = append(out, Field{Key: key, StructField: f})
	}
	return out
}

var unmarshalerType = reflect.TypeFor[yaml.Unmarshaler]()

// Decode decodes n into the value v points to. Struct fields are matched to keys by
// Fields; keys that match no field, a key given twice, values of the wrong kind and a
// text field's value outside its enum tag's list are errors (*Error). A field left out keeps its value, so defaults set before the
// call stay; an empty value (`key:`) sets a field's zero value, except that of a
// struct, which keeps its fields; an empty list is a nil slice. Strings take any scalar; numbers must be written as
// numbers, whole numbers for integer types; booleans are true or false. A type that
// implements yaml.Unmarshaler decodes itself, and its errors are placed under its key.
func Decode(n *yaml.Node, v any) error {
	rv := reflect.ValueOf(v)
	if rv.Kind() != reflect.Pointer || rv.IsNil() {
		return fmt.Errorf("yamlnode.Decode: want a non-nil pointer, got %T", v)
	}
	return decode(n, rv.Elem())
}

func decode(n *yaml.Node, v reflect.Value) error {
	n = Resolve(n)
	if v.CanAddr() && v.Addr().Type().Implements(unmarshalerType) {
		return Under(v.Addr().Interface().(yaml.Unmarshaler).UnmarshalYAML(n), n, "")
	}
	if IsNull(n) {
		if v.Kind() != reflect.Struct {
			v.SetZero()
		}
		return nil
	}
	switch v.Kind() {
	case reflect.Pointer:
		if v.IsNil() {
			v.Set(reflect.New(v.Type().Elem()))
		}
		return decode(n, v.Elem())
	case reflect.Struct:
		return decodeStruct(n, v)
	case reflect.Slice:
		if n.Kind != yaml.SequenceNode {
			return wrong(n, v.Type())
		}
		if len(n.Content) == 0 {
			v.SetZero()
			return nil
		}
		s := reflect.MakeSlice(v.Type(), len(n.Content), len(n.Content))
		for i, item := range n.Content {
			if err := decode(item, s.Index(i)); err != nil {
				return Under(err, item, fmt.Sprintf("[%d]", i))
			}
		}
		v.Set(s)
		return nil
	case reflect.Array:
		if n.Kind != yaml.SequenceNode || len(n.Content) != v.Len() {
			return wrong(n, v.Type())
		}
		for i, item := range n.Content {
			if err := decode(item, v.Index(i)); err != nil {
				return Under(err, item, fmt.Sprintf("[%d]", i))
			}
		}
		return nil
	case reflect.Map:
		if v.Type().Key().Kind() != reflect.String {
			return fmt.Errorf("yamlnode: cannot decode into %s (map keys are strings)", v.Type())
		}
		if n.Kind != yaml.MappingNode {
			return wrong(n, v.Type())
		}
		pairs, err := Pairs(n)
		if err != nil {
			return err
		}
		m := reflect.MakeMapWithSize(v.Type(), len(pairs))
		for _, p := range pairs {
			e := reflect.New(v.Type().Elem()).Elem()
			if err := decode(p.Value, e); err != nil {
				return Under(err, p.Value, p.Key.Value)
			}
			m.SetMapIndex(reflect.ValueOf(p.Key.Value).Convert(v.Type().Key()), e)
		}
		v.Set(m)
		return nil
	}
	if n.Kind != yaml.ScalarNode {
		return wrong(n, v.Type())
	}
	tag := n.ShortTag()
	switch v.Kind() {
	case reflect.String:
		v.SetString(n.Value)
	case reflect.Bool:
		var b bool
		if tag != "!!bool" || n.Decode(&b) != nil {
			return wrong(n, v.Type())
		}
		v.SetBool(b)
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		var i int64
		if tag != "!!int" || n.Decode(&i) != nil || v.OverflowInt(i) {
			return wrong(n, v.Type())
		}
		v.SetInt(i)
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		var u uint64
		if tag != "!!int" || n.Decode(&u) != nil || v.OverflowUint(u) {
			return wrong(n, v.Type())
		}
		v.SetUint(u)
	case reflect.Float32, reflect.Float64:
		var f float64
		if (tag != "!!float" && tag != "!!int") || n.Decode(&f) != nil {
			return wrong(n, v.Type())
		}
		v.SetFloat(f)
	default:
		return fmt.Errorf("yamlnode: cannot decode into %s", v.Type())
	}
	return nil
}

func decodeStruct(n *yaml.Node, v reflect.Value) error {
	if n.Kind != yaml.MappingNode {
		return wrong(n, v.Type())
	}
	fields := Fields(v.Type())
	index := map[string]int{}
	keys := make([]string, len(fields))
	for i, f := range fields {
		index[f.Key] = i
		keys[i] = f.Key
	}
	pairs, err := Pairs(n)
	if err != nil {
		return err
	}
	for _, p := range pairs {
		i, ok := index[p.Key.Value]
		if !ok {
			return Unknown(p.Key, keys)
		}
		fv := v.FieldByIndex(fields[i].Index)
		if err := decode(p.Value, fv); err != nil {
			return Under(err, p.Value, p.Key.Value)
		}
		if enum := Enum(fields[i].StructField); enum != nil && fv.Kind() == reflect.String && !IsNull(p.Value) && !slices.Contains(enum, fv.String()) {
			return Under(Errorf(p.Value, "unknown %q; valid: %s", fv.String(), strings.Join(enum, ", ")), p.Value, p.Key.Value)
		}
	}
	return nil
}

// Enum returns the valid values of a text field, from its enum tag ("flatten,avg,max");
// nil without one.
func Enum(f reflect.StructField) []string {
	tag := f.Tag.Get("enum")
	if tag == "" {
		return nil
	}
	return strings.Split(tag, ",")
}

func wrong(n *yaml.Node, t reflect.Type) *Error {
	return Errorf(n, "%s; want %s", Describe(n), Want(t))
}

// Want describes the values of a Go type in words, for error messages: "a whole
// number", "a list of numbers", "a mapping of pool, dense, ...".
func Want(t reflect.Type) string {
	switch t.Kind() {
	case reflect.Pointer:
		return Want(t.Elem())
	case reflect.String:
		return "text"
	case reflect.Bool:
		return "true or false"
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		return "a whole number"
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		return "a whole number, 0 or more"
	case reflect.Float32, reflect.Float64:
		return "a number"
	case reflect.Slice:
		return "a list of " + plural(t.Elem())
	case reflect.Array:
		return fmt.Sprintf("a list of %d %s", t.Len(), plural(t.Elem()))
	case reflect.Map:
		return "a mapping of names to " + plural(t.Elem())
	case reflect.Struct:
		var keys []string
		for _, f := range Fields(t) {
			keys = append(keys, f.Key)
		}
		return "a mapping of " + strings.Join(keys, ", ")
	}
	return t.String()
}

func plural(t reflect.Type) string {
	switch t.Kind() {
	case reflect.String:
		return "strings"
	case reflect.Bool:
		return "true or false values"
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
		reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		return "whole numbers"
	case reflect.Float32, reflect.Float64:
		return "numbers"
	case reflect.Slice:
		return "lists"
	}
	return "mappings"
}

// Nearest returns the candidate closest to s: one equal to it but for case, an
// abbreviation of it (lr for learning_rate) or the other way round, else one that starts
// with it (cut_frac for cut) or that it starts with, else the one at the smallest edit
// distance; the first such in candidates' order.
func Nearest(s string, candidates []string) string {
	best, bestD := "", 1<<30
	for _, c := range candidates {
		d := editDistance(s, c)
		switch {
		case strings.EqualFold(c, s) || c == initials(s) || s == initials(c):
			d = 0
		case s != "" && (strings.HasPrefix(c, s) || strings.HasPrefix(s, c)):
			d = min(d, 1)
		}
		if d < bestD {
			best, bestD = c, d
		}
	}
	return best
}

// initials returns the first letters of the words of an underscored name.
func initials(s string) string {
	out := ""
	for _, w := range strings.Split(s, "_") {
		if w != "" {
			out += w[:1]
		}
	}
	return out
}

func editDistance(a, b string) int {
	prev := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur := make([]int, len(b)+1)
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev = cur
	}
	return prev[len(b)]
}

// MarshalJSON writes a type's YAML form as JSON: for types whose JSON should read as
// the recipe does.
func MarshalJSON(m yaml.Marshaler) ([]byte, error) {
	v, err := m.MarshalYAML()
	if err != nil {
		return nil, err
	}
	if n, ok := v.(*yaml.Node); ok {
		var plain any
		if err := n.Decode(&plain); err != nil {
			return nil, err
		}
		v = plain
	}
	return json.Marshal(v)
}

// UnmarshalJSON reads JSON (which is YAML) through a type's UnmarshalYAML.
func UnmarshalJSON(b []byte, u yaml.Unmarshaler) error {
	var n yaml.Node
	if err := yaml.Unmarshal(b, &n); err != nil {
		return err
	}
	if len(n.Content) == 0 {
		return u.UnmarshalYAML(&yaml.Node{Kind: yaml.ScalarNode, Tag: "!!null"})
	}
	return u.UnmarshalYAML(n.Content[0])
}

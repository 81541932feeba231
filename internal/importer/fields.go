package importer

import (
	"encoding/json"
	"fmt"
	"math"
	"sort"
	"strconv"
)

// object is one JSON object of an upstream manifest while it is read. It knows its path, so
// that every message names the field, and which of its keys were read, so that the keys no
// conversion knows are reported instead of lost without a word.
type object struct {
	// subject names the manifest in messages: "node worker-3".
	subject string
	// kind is the upstream kind, for the message about unknown fields.
	kind string
	// path is where this object is in the manifest: "spec.startupPodSpec".
	path string
	m    map[string]any
	read map[string]bool
	kids []*object
	p    *problems
}

func newObject(p *problems, subject, kind, path string, m map[string]any) *object {
	return &object{subject: subject, kind: kind, path: path, m: m, read: map[string]bool{}, p: p}
}

// at is the path of key in this object.
func (o *object) at(key string) string {
	if o.path == "" {
		return key
	}
	return o.path + "." + key
}

// errorf records an error about key (or about the object itself when key is empty).
func (o *object) errorf(key, format string, args ...any) {
	where := o.path
	if key != "" {
		where = o.at(key)
	}
	o.p.errorf("%s: %s: %s", o.subject, where, fmt.Sprintf(format, args...))
}

// warnf records a warning about key.
func (o *object) warnf(key, format string, args ...any) {
	o.p.warnf("%s: %s: %s", o.subject, o.at(key), fmt.Sprintf(format, args...))
}

// value returns key's value; a missing key and null are both absent.
func (o *object) value(key string) (any, bool) {
	o.read[key] = true
	v, ok := o.m[key]
	if !ok || v == nil {
		return nil, false
	}
	return v, true
}

// str returns key's string value; a value of another type is an error.
func (o *object) str(key string) (string, bool) {
	v, ok := o.value(key)
	if !ok {
		return "", false
	}
	s, ok := v.(string)
	if !ok {
		o.errorf(key, "want a string, got %s", describe(v))
		return "", false
	}
	return s, true
}

// strs returns key's list of strings.
func (o *object) strs(key string) []string {
	v, ok := o.value(key)
	if !ok {
		return nil
	}
	list, ok := v.([]any)
	if !ok {
		o.errorf(key, "want a list of strings, got %s", describe(v))
		return nil
	}
	out := make([]string, 0, len(list))
	for i, item := range list {
		s, ok := item.(string)
		if !ok {
			o.errorf(fmt.Sprintf("%s[%d]", key, i), "want a string, got %s", describe(item))
			continue
		}
		out = append(out, s)
	}
	return out
}

// boolean returns key's boolean value.
func (o *object) boolean(key string) (bool, bool) {
	v, ok := o.value(key)
	if !ok {
		return false, false
	}
	b, ok := v.(bool)
	if !ok {
		o.errorf(key, "want true or false, got %s", describe(v))
		return false, false
	}
	return b, true
}

// int32Value returns key's value as an int32, refusing fractions and values out of range.
func (o *object) int32Value(key string) (int32, bool) {
	v, ok := o.value(key)
	if !ok {
		return 0, false
	}
	n, isNumber := v.(json.Number)
	i, err := strconv.ParseInt(string(n), 10, 64)
	if !isNumber || err != nil || i < math.MinInt32 || i > math.MaxInt32 {
		o.errorf(key, "want a whole number, got %s", describe(v))
		return 0, false
	}
	return int32(i), true
}

// child returns key's object, or nil when it is absent.
func (o *object) child(key string) *object {
	v, ok := o.value(key)
	if !ok {
		return nil
	}
	m, ok := v.(map[string]any)
	if !ok {
		o.errorf(key, "want a map, got %s", describe(v))
		return nil
	}
	kid := newObject(o.p, o.subject, o.kind, o.at(key), m)
	o.kids = append(o.kids, kid)
	return kid
}

// children returns key's list of objects.
func (o *object) children(key string) []*object {
	v, ok := o.value(key)
	if !ok {
		return nil
	}
	list, ok := v.([]any)
	if !ok {
		o.errorf(key, "want a list, got %s", describe(v))
		return nil
	}
	out := make([]*object, 0, len(list))
	for i, item := range list {
		path := fmt.Sprintf("%s[%d]", key, i)
		m, ok := item.(map[string]any)
		if !ok {
			o.errorf(path, "want a map, got %s", describe(item))
			continue
		}
		kid := newObject(o.p, o.subject, o.kind, o.at(path), m)
		o.kids = append(o.kids, kid)
		out = append(out, kid)
	}
	return out
}

// warnUnread warns about every key of this object and of the objects read from it that no
// conversion read. Upstream's apiserver pruned fields its schema does not have, so such a key
// never had an effect there either.
func (o *object) warnUnread() {
	var keys []string
	for k := range o.m {
		if !o.read[k] {
			keys = append(keys, k)
		}
	}
	sort.Strings(keys)
	for _, k := range keys {
		o.warnf(k, "ignored: not a field of upstream's %s (its apiserver dropped it too)", o.kind)
	}
	for _, kid := range o.kids {
		kid.warnUnread()
	}
}

// describe names a decoded JSON value for a message.
func describe(v any) string {
	switch v := v.(type) {
	case string:
		return strconv.Quote(v)
	case bool:
		return strconv.FormatBool(v)
	case json.Number:
		return "the number " + string(v)
	case []any:
		return "a list"
	case map[string]any:
		return "a map"
	default:
		return fmt.Sprintf("%v", v)
	}
}

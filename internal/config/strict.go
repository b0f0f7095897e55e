package config

import (
	"fmt"
	"reflect"
	"regexp"
	"sort"
	"strings"
)

// serviceLink matches the variables Kubernetes injects for a service whose name starts
// with "ucprelay" (UCPRELAY_SERVICE_HOST, UCPRELAY_PORT_8080_TCP_ADDR, ...): they are not
// configuration, and strict loading skips them (the chart also sets enableServiceLinks:
// false).
var serviceLink = regexp.MustCompile(`^` + EnvPrefix + `([A-Z0-9_]+_)?(SERVICE_HOST|SERVICE_PORT(_[A-Z0-9_]+)?|PORT(_[0-9]+_(TCP|UDP|SCTP)(_(PROTO|PORT|ADDR))?)?)$`)

// secretVars are the environment variables the configuration names as holding a secret
// (the values of every *_env key in the file or in UCPRELAY_* variables): they are not
// configuration, so strict loading skips them and nothing shows them.
func secretVars(fileKeys map[string]any, environ []string) map[string]bool {
	out := map[string]bool{}
	for k, v := range fileKeys {
		if s, ok := v.(string); ok && strings.HasSuffix(k, "_env") && s != "" {
			out[s] = true
		}
	}
	for _, kv := range environ {
		name, v, _ := strings.Cut(kv, "=")
		if strings.HasPrefix(name, EnvPrefix) && strings.HasSuffix(name, "_ENV") && v != "" {
			out[v] = true
		}
	}
	return out
}

// unknownKeys turns the decoder's unused keys (mapstructure paths such as kafka.grup,
// partners[google].ucp_vresion, mapping[0].rules[1].mach) into one error each, naming
// the key, or the variable that set it, and the nearest known key.
func unknownKeys(unused []string, envVar map[string]string) []error {
	sort.Strings(unused)
	errs := make([]error, 0, len(unused))
	for _, path := range unused {
		key, near := dotted(path), dotted(nearestKey(path))
		if v, ok := envVar[key]; ok {
			hint := ""
			if near != "" {
				hint = fmt.Sprintf(" (did you mean %s?)", envName(near))
			}
			errs = append(errs, fmt.Errorf("config: %s: unknown variable: it would set %s, which is not a key%s", v, key, hint))
			continue
		}
		hint := ""
		if near != "" {
			hint = fmt.Sprintf(" (did you mean %s?)", near)
		}
		errs = append(errs, fmt.Errorf("config: %s: unknown key%s", key, hint))
	}
	return errs
}

// isKey reports whether name (dotted) is a configuration key or a level of keys.
func isKey(name string) bool { return typeAt(reflect.TypeFor[Config](), name) != nil }

// dotted writes a decoder path as the configuration's errors name keys: map keys with
// koanf's dots (partners[google].x is partners.google.x), list indexes in brackets
// (mapping[0].rules[1].match).
func dotted(path string) string {
	var b strings.Builder
	for i := 0; i < len(path); i++ {
		if path[i] != '[' {
			b.WriteByte(path[i])
			continue
		}
		end := strings.IndexByte(path[i:], ']')
		if end < 0 {
			b.WriteString(path[i:])
			break
		}
		if t := typeAt(reflect.TypeFor[Config](), path[:i]); t != nil && t.Kind() == reflect.Map {
			b.WriteString("." + path[i+1:i+end])
		} else {
			b.WriteString(path[i : i+end+1])
		}
		i += end
	}
	return b.String()
}

// envName is the UCPRELAY_* variable of a key (levels joined by a double underscore).
func envName(key string) string {
	return EnvPrefix + strings.ToUpper(strings.ReplaceAll(key, ".", "__"))
}

// nearestKey returns the known key nearest to an unknown one at the same level (the
// unknown path with its last name replaced), or "" when none is near.
func nearestKey(path string) string {
	parent, name := "", path
	if i := strings.LastIndexByte(path, '.'); i >= 0 {
		parent, name = path[:i], path[i+1:]
	}
	t := typeAt(reflect.TypeFor[Config](), parent)
	if t == nil || t.Kind() != reflect.Struct {
		return ""
	}
	best, bestD := "", len(name)/2+1 // fewer than about half the name may differ
	for i := range t.NumField() {
		tag := t.Field(i).Tag.Get("koanf")
		if tag == "" || !t.Field(i).IsExported() {
			continue
		}
		if d := editDistance(name, tag); d < bestD {
			best, bestD = tag, d
		}
	}
	if best == "" {
		return ""
	}
	if parent == "" {
		return best
	}
	return parent + "." + best
}

// typeAt is the type a decoder path names in t: struct fields by koanf tag, map values
// by [key] or .key, list elements by [index]; nil when the path leaves the type.
func typeAt(t reflect.Type, path string) reflect.Type {
	for path != "" {
		if path[0] == '[' {
			end := strings.IndexByte(path, ']')
			if end < 0 || (t.Kind() != reflect.Map && t.Kind() != reflect.Slice) {
				return nil
			}
			path = strings.TrimPrefix(path[end+1:], ".")
			t = t.Elem()
			continue
		}
		end := strings.IndexAny(path, ".[")
		if end < 0 {
			end = len(path)
		}
		seg := path[:end]
		path = strings.TrimPrefix(path[end:], ".")
		if t.Kind() == reflect.Map { // a map key written with a dot (partners.google)
			t = t.Elem()
			continue
		}
		if t.Kind() != reflect.Struct {
			return nil
		}
		f, ok := fieldByTag(t, seg)
		if !ok {
			return nil
		}
		t = f.Type
	}
	return t
}

func fieldByTag(t reflect.Type, tag string) (reflect.StructField, bool) {
	for i := range t.NumField() {
		if f := t.Field(i); f.IsExported() && f.Tag.Get("koanf") == tag {
			return f, true
		}
	}
	return reflect.StructField{}, false
}

// editDistance is the Damerau-Levenshtein distance (optimal string alignment) of a and b:
// a transposition of two neighbours (vresion) counts one.
func editDistance(a, b string) int {
	d := make([][]int, len(a)+1)
	for i := range d {
		d[i] = make([]int, len(b)+1)
		d[i][0] = i
	}
	for j := range d[0] {
		d[0][j] = j
	}
	for i := 1; i <= len(a); i++ {
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			d[i][j] = min(d[i-1][j]+1, d[i][j-1]+1, d[i-1][j-1]+cost)
			if i > 1 && j > 1 && a[i-1] == b[j-2] && a[i-2] == b[j-1] {
				d[i][j] = min(d[i][j], d[i-2][j-2]+1)
			}
		}
	}
	return d[len(a)][len(b)]
}

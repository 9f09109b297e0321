package restapi

import (
	"net/url"
	"strings"
	"unicode/utf8"
)

// singleParams reads parameters that may appear at most once, without
// allocating when nothing is escaped (the common case). It checks the whole
// query string, so a badly encoded pair anywhere is refused: a server that
// silently drops what it cannot decode answers a question nobody asked.
// names and values are index for index; the first required names must be
// given, the rest are optional; empty values are errors. Other parameters
// are ignored, as the seed did.
func singleParams(rawQuery string, names []string, required int, values []string) error {
	if err := scanQuery(rawQuery, func(key, value string) error {
		for i, n := range names {
			if key != n {
				continue
			}
			if values[i] != "" {
				return badRequest("parameter %q given more than once", n)
			}
			if value == "" {
				return badRequest("parameter %q is empty", n)
			}
			values[i] = value
		}
		return nil
	}); err != nil {
		return err
	}
	for i, n := range names[:required] {
		if values[i] == "" {
			return badRequest("missing parameter %q", n)
		}
	}
	return nil
}

// multiParams collects every value of the named parameters, which may repeat.
// An empty value is an error.
func multiParams(rawQuery string, names ...string) (map[string][]string, error) {
	out := map[string][]string{}
	err := scanQuery(rawQuery, func(key, value string) error {
		for _, n := range names {
			if key == n {
				if value == "" {
					return badRequest("parameter %q is empty", n)
				}
				out[n] = append(out[n], value)
			}
		}
		return nil
	})
	return out, err
}

// scanQuery decodes each key=value pair of a query string in order. A pair
// that does not decode to valid UTF-8 (SW-%FF%FE) is badly encoded too: no
// switch, metric or port is named by it, and answering 404 would hide that
// the client's encoding is wrong.
func scanQuery(rawQuery string, visit func(key, value string) error) error {
	for rawQuery != "" {
		var pair string
		pair, rawQuery, _ = strings.Cut(rawQuery, "&")
		if pair == "" {
			continue
		}
		if strings.Contains(pair, ";") {
			return badRequest("invalid semicolon separator in query")
		}
		rawKey, rawValue, _ := strings.Cut(pair, "=")
		key, err := url.QueryUnescape(rawKey)
		if err == nil && !utf8.ValidString(key) {
			return badRequest("parameter name %q is not valid UTF-8", clip(strings.ToValidUTF8(key, "\uFFFD")))
		}
		if err != nil {
			return badRequest("badly encoded parameter name %q", clip(rawKey))
		}
		value, err := url.QueryUnescape(rawValue)
		if err != nil {
			return badRequest("badly encoded value of parameter %q", clip(key))
		}
		if !utf8.ValidString(value) {
			return badRequest("value of parameter %q is not valid UTF-8", clip(key))
		}
		if err := visit(key, value); err != nil {
			return err
		}
	}
	return nil
}

// clip keeps an echoed input short in an error message.
func clip(s string) string {
	const limit = 128
	if len(s) > limit {
		return s[:limit] + "..."
	}
	return s
}

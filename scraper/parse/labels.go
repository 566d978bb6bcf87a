package parse

import (
	"strings"

	"github.com/claude-usage/widget/shared"
)

// windows are the key prefixes that name a limit's window, with the
// window as a label suffix: "seven_day_foo_bar" is "Foo bar (7 days)".
var windows = []struct{ key, suffix string }{
	{"seven_day", "7 days"},
	{"five_hour", "5 hours"},
	{"weekly", "7 days"},
	{"session", "5 hours"},
}

// HumanLabel turns an API key such as "seven_day_oauth_apps" into a label a
// person can read ("Oauth apps (7 days)"). A key without a known window
// prefix becomes its words ("Iguana necktie").
func HumanLabel(key string) string {
	k := strings.ToLower(strings.TrimSpace(key))
	var suffix string
	for _, w := range windows {
		if k == w.key || strings.HasPrefix(k, w.key+"_") {
			suffix, k = w.suffix, strings.TrimPrefix(strings.TrimPrefix(k, w.key), "_")
			break
		}
	}
	return label(strings.Join(strings.Fields(nonID.ReplaceAllString(k, " ")), " "), suffix)
}

// groupLabel is the label of a limit of an unknown kind: its words, with
// the window its group names when the kind itself names none.
func groupLabel(kind, group string) string {
	l := HumanLabel(kind)
	if strings.HasSuffix(l, ")") {
		return l
	}
	g := strings.ToLower(strings.TrimSpace(group))
	for _, w := range windows {
		if g == w.key {
			return label(strings.ToLower(l[:1])+l[1:], w.suffix)
		}
	}
	return l
}

func label(words, window string) string {
	l := words
	switch {
	case l == "" && window == "":
		l = "Limit"
	case l == "":
		l = window
	case window != "":
		l += " (" + window + ")"
	}
	l = strings.ToUpper(l[:1]) + l[1:]
	if len(l) > shared.MaxLabelLen {
		l = l[:shared.MaxLabelLen]
	}
	return l
}

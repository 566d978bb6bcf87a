package storemigrate

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"slices"
)

// digest is a count and a SHA-256 over one kind of copied item.
type digest struct {
	Count int
	Sum   string
}

func (d digest) matches(o digest) bool { return d == o }

// short is the start of the sum, enough to compare by eye.
func (d digest) short() string { return d.Sum[:16] }

// linesDigest hashes lines in the order given, each ended by a newline.
func linesDigest(lines []string) digest {
	h := sha256.New()
	for _, l := range lines {
		h.Write([]byte(l))
		h.Write([]byte{'\n'})
	}
	return digest{Count: len(lines), Sum: hex.EncodeToString(h.Sum(nil))}
}

func bytesDigest(b []byte) digest {
	if b == nil {
		return linesDigest(nil)
	}
	return linesDigest([]string{string(b)})
}

// canonical is v as JSON with every object's keys sorted and numbers as
// Go writes them: the database keeps JSON as jsonb, which orders keys its
// own way.
func canonical(v any) string {
	raw, err := json.Marshal(v)
	if err != nil {
		return "unencodable: " + err.Error()
	}
	var x any
	if err := json.Unmarshal(raw, &x); err != nil {
		return "undecodable: " + err.Error()
	}
	out, _ := json.Marshal(x)
	return string(out)
}

func sortedDigest(lines []string) digest {
	slices.Sort(lines)
	return linesDigest(lines)
}

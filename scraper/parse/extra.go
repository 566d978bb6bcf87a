package parse

import (
	"encoding/json"
	"fmt"
	"math"
	"strconv"
	"strings"

	"github.com/claude-usage/widget/shared"
)

// extraUsage reads the pay-as-you-go spend: the extra_usage object, and the
// newer spend object (top level or inside extra_usage), which wins where
// both give an amount because it states its own precision.
func (b *builder) extraUsage(fields map[string]json.RawMessage) {
	var eu *shared.ExtraUsage
	var inner map[string]json.RawMessage
	if raw, ok := fields["extra_usage"]; ok && !isNull(raw) {
		var err error
		if eu, inner, err = parseExtraUsage(raw); err != nil {
			b.fail("extra_usage", err.Error())
			return
		}
	}
	raw, ok := fields["spend"]
	if !ok || isNull(raw) {
		raw, ok = inner["spend"]
	}
	if ok && !isNull(raw) {
		sp, err := parseSpend(raw)
		if err != nil {
			b.fail("spend", err.Error())
		} else {
			if eu == nil {
				eu = &shared.ExtraUsage{Enabled: true}
			}
			if sp.used != nil {
				eu.UsedCents = *sp.used
			}
			if sp.limit != nil {
				eu.LimitCents = *sp.limit
			}
			if sp.currency != "" {
				eu.Currency = sp.currency
			}
		}
	}
	b.snap.ExtraUsage = eu
}

func parseExtraUsage(raw json.RawMessage) (*shared.ExtraUsage, map[string]json.RawMessage, error) {
	var m map[string]json.RawMessage
	if err := json.Unmarshal(raw, &m); err != nil {
		return nil, nil, fmt.Errorf("extra_usage is not an object")
	}
	eu := &shared.ExtraUsage{}
	for _, k := range []string{"is_enabled", "enabled"} {
		if v, ok := m[k]; ok && !isNull(v) {
			if err := json.Unmarshal(v, &eu.Enabled); err != nil {
				return nil, nil, fmt.Errorf("extra_usage.%s is not a boolean", k)
			}
			break
		}
	}
	// Claude reports credits in cents; *_cents names are accepted as well so
	// that a rename does not drop the spend.
	used, err := cents(m, "used_credits", "used_cents", "used")
	if err != nil {
		return nil, nil, err
	}
	limit, err := cents(m, "monthly_limit", "monthly_limit_cents", "limit_cents", "limit")
	if err != nil {
		return nil, nil, err
	}
	if limit != nil {
		eu.LimitCents = *limit
	}
	var util *float64
	if v, ok := m["utilization"]; ok && !isNull(v) {
		f, err := percent(v, "extra_usage.utilization")
		if err != nil {
			return nil, nil, err
		}
		util = &f
	}
	switch {
	case used != nil:
		eu.UsedCents = *used
	case util != nil && eu.LimitCents > 0:
		// Only the share is given: the spend follows from the limit.
		eu.UsedCents = int64(math.Round(*util / 100 * float64(eu.LimitCents)))
	}
	if v, ok := m["currency"]; ok && !isNull(v) {
		if err := json.Unmarshal(v, &eu.Currency); err != nil || len(eu.Currency) > 8 {
			return nil, nil, fmt.Errorf("extra_usage.currency is not a currency code")
		}
		eu.Currency = strings.ToUpper(eu.Currency)
	}
	return eu, m, nil
}

// cents is the first of names present and not null, rounded to whole
// cents; nil when none is.
func cents(m map[string]json.RawMessage, names ...string) (*int64, error) {
	for _, k := range names {
		v, ok := m[k]
		if !ok || isNull(v) {
			continue
		}
		var f float64
		if err := json.Unmarshal(v, &f); err != nil {
			var s string
			if json.Unmarshal(v, &s) != nil {
				return nil, fmt.Errorf("extra_usage.%s is not a number", k)
			}
			if f, err = strconv.ParseFloat(strings.TrimSpace(s), 64); err != nil {
				return nil, fmt.Errorf("extra_usage.%s is not a number: %q", k, clip(s, 20))
			}
		}
		if math.IsNaN(f) || math.IsInf(f, 0) || f < 0 || f > 1e15 {
			return nil, fmt.Errorf("extra_usage.%s %g is out of range", k, f)
		}
		c := int64(math.Round(f))
		return &c, nil
	}
	return nil, nil
}

type spend struct {
	used, limit *int64 // nil: not given
	currency    string
}

// money is an amount in minor units with its exponent: 1250 with
// exponent 2 is 12.50.
type money struct {
	AmountMinor *json.Number `json:"amount_minor"`
	Exponent    *int         `json:"exponent"`
	Currency    string       `json:"currency"`
}

func parseSpend(raw json.RawMessage) (spend, error) {
	var v struct {
		Used     *money `json:"used"`
		Limit    *money `json:"limit"`
		Currency string `json:"currency"`
	}
	if err := json.Unmarshal(raw, &v); err != nil {
		return spend{}, fmt.Errorf("spend is not an object with used and limit amounts")
	}
	var sp spend
	var err error
	if sp.used, err = v.Used.cents("spend.used"); err != nil {
		return spend{}, err
	}
	if sp.limit, err = v.Limit.cents("spend.limit"); err != nil {
		return spend{}, err
	}
	for _, c := range []string{v.Currency, currencyOf(v.Used), currencyOf(v.Limit)} {
		if c != "" {
			if len(c) > 8 {
				return spend{}, fmt.Errorf("spend currency %q is not a currency code", clip(c, 20))
			}
			sp.currency = strings.ToUpper(c)
			break
		}
	}
	return sp, nil
}

func currencyOf(m *money) string {
	if m == nil {
		return ""
	}
	return m.Currency
}

// cents converts to hundredths of the currency's unit, the unit of
// shared.ExtraUsage.
func (m *money) cents(field string) (*int64, error) {
	if m == nil || m.AmountMinor == nil {
		return nil, nil
	}
	n, err := m.AmountMinor.Float64()
	if err != nil {
		return nil, fmt.Errorf("%s.amount_minor is not a number", field)
	}
	exp := 2
	if m.Exponent != nil {
		exp = *m.Exponent
	}
	if exp < 0 || exp > 8 {
		return nil, fmt.Errorf("%s.exponent %d is outside 0-8", field, exp)
	}
	c := math.Round(n * math.Pow10(2-exp))
	if math.IsNaN(c) || c < 0 || c > 1e15 {
		return nil, fmt.Errorf("%s.amount_minor %s is out of range", field, m.AmountMinor.String())
	}
	v := int64(c)
	return &v, nil
}

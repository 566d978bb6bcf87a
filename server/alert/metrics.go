package alert

import "github.com/prometheus/client_golang/prometheus"

// Delivery results, the bounded values of the result label.
const (
	ResultSent    = "sent"
	ResultFailed  = "failed"  // a round of attempts failed (or a permanent refusal)
	ResultDropped = "dropped" // given up: queue full, too old, or its target is gone
)

// Metrics are the alert counters. Labels are bounded: kind by the closed
// set of kinds, channel by the three channels, result by the three above.
// A nil *Metrics counts nothing.
type Metrics struct {
	alerts     *prometheus.CounterVec
	deliveries *prometheus.CounterVec
	queued     *prometheus.GaugeVec
}

// NewMetrics creates the counters; register them with Collectors.
func NewMetrics() *Metrics {
	return &Metrics{
		alerts: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "usage_alerts_total", Help: "Alerts fired, by kind (each id once).",
		}, []string{"kind"}),
		deliveries: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "usage_alert_deliveries_total", Help: "Alert deliveries by channel and result (sent, failed, dropped).",
		}, []string{"channel", "result"}),
		queued: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "usage_alert_queue_length", Help: "Deliveries waiting in each channel's durable queue.",
		}, []string{"channel"}),
	}
}

// Collectors are what the server registers.
func (m *Metrics) Collectors() []prometheus.Collector {
	return []prometheus.Collector{m.alerts, m.deliveries, m.queued}
}

func (m *Metrics) fired(k Kind) {
	if m != nil {
		m.alerts.WithLabelValues(string(k)).Inc()
	}
}

func (m *Metrics) delivery(channel, result string) {
	if m != nil {
		m.deliveries.WithLabelValues(channel, result).Inc()
	}
}

func (m *Metrics) queueLength(channel string, n int) {
	if m != nil {
		m.queued.WithLabelValues(channel).Set(float64(n))
	}
}

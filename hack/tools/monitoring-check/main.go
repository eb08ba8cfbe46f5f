// monitoring-check validates the monitoring kit with the real Prometheus and prometheus-operator
// code: every PrometheusRule and ServiceMonitor is decoded strictly into the prometheus-operator
// monitoring/v1 types (an unknown or misspelt field is an error), every rule expression and
// every Grafana dashboard target expression is parsed by the PromQL parser of Prometheus, and
// every duration ("for", "interval", "scrapeTimeout") by Prometheus' duration parser.
//
// It prints, as JSON on stdout, each expression with the metric names it reads, so that callers
// can check those names against what the operator exports; errors go to stderr, exit status 1.
//
// Usage: monitoring-check FILE...   (YAML files with the objects, JSON files with dashboards)
package main

import (
	"encoding/json"
	"fmt"
	"os"
	"regexp"
	"sort"
	"strings"

	monitoringv1 "github.com/prometheus-operator/prometheus-operator/pkg/apis/monitoring/v1"
	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/promql/parser"
	"sigs.k8s.io/yaml"
)

// Expression is one checked PromQL expression and the metric names it selects.
type Expression struct {
	File    string   `json:"file"`
	Where   string   `json:"where"`
	Expr    string   `json:"expr"`
	Metrics []string `json:"metrics"`
}

type checker struct {
	parser      parser.Parser
	expressions []Expression
	errors      []string
}

var (
	documentSeparator = regexp.MustCompile(`(?m)^---\s*$`)
	// Grafana's built-in interval variables stand for a range; other variables for label values.
	grafanaInterval = regexp.MustCompile(`\$(__rate_interval|__interval|__range)\b|\$\{(__rate_interval|__interval|__range)\}`)
	grafanaVariable = regexp.MustCompile(`\$\{?[A-Za-z_][A-Za-z0-9_]*\}?`)
)

func (c *checker) fail(format string, args ...any) {
	c.errors = append(c.errors, fmt.Sprintf(format, args...))
}

func (c *checker) expr(file, where, text string) {
	expr, err := c.parser.ParseExpr(text)
	if err != nil {
		c.fail("%s: %s: invalid PromQL %q: %v", file, where, text, err)
		return
	}
	seen := map[string]bool{}
	parser.Inspect(expr, func(node parser.Node, _ []parser.Node) error {
		if vs, ok := node.(*parser.VectorSelector); ok && vs.Name != "" {
			seen[vs.Name] = true
		}
		return nil
	})
	metrics := make([]string, 0, len(seen))
	for name := range seen {
		metrics = append(metrics, name)
	}
	sort.Strings(metrics)
	c.expressions = append(c.expressions, Expression{File: file, Where: where, Expr: text, Metrics: metrics})
}

func (c *checker) duration(file, where string, value string) {
	if value == "" {
		return
	}
	if _, err := model.ParseDuration(value); err != nil {
		c.fail("%s: %s: invalid duration %q: %v", file, where, value, err)
	}
}

func (c *checker) yamlFile(file string, data []byte) {
	for i, doc := range documentSeparator.Split(string(data), -1) {
		if strings.TrimSpace(doc) == "" {
			continue
		}
		var head struct {
			Kind     string `json:"kind"`
			Metadata struct {
				Name string `json:"name"`
			} `json:"metadata"`
		}
		if err := yaml.Unmarshal([]byte(doc), &head); err != nil {
			c.fail("%s: document %d: invalid YAML: %v", file, i+1, err)
			continue
		}
		where := fmt.Sprintf("%s %s", head.Kind, head.Metadata.Name)
		switch head.Kind {
		case "PrometheusRule":
			var rule monitoringv1.PrometheusRule
			if err := yaml.UnmarshalStrict([]byte(doc), &rule); err != nil {
				c.fail("%s: %s: %v", file, where, err)
				continue
			}
			c.rules(file, where, &rule)
		case "ServiceMonitor":
			var monitor monitoringv1.ServiceMonitor
			if err := yaml.UnmarshalStrict([]byte(doc), &monitor); err != nil {
				c.fail("%s: %s: %v", file, where, err)
				continue
			}
			if len(monitor.Spec.Endpoints) == 0 {
				c.fail("%s: %s: no endpoints", file, where)
			}
			for j, ep := range monitor.Spec.Endpoints {
				at := fmt.Sprintf("%s endpoint %d", where, j)
				c.duration(file, at+" interval", string(ep.Interval))
				c.duration(file, at+" scrapeTimeout", string(ep.ScrapeTimeout))
			}
		default:
			c.fail("%s: %s: not a PrometheusRule or ServiceMonitor", file, where)
		}
	}
}

func (c *checker) rules(file, where string, rule *monitoringv1.PrometheusRule) {
	if len(rule.Spec.Groups) == 0 {
		c.fail("%s: %s: no rule groups", file, where)
	}
	for _, group := range rule.Spec.Groups {
		if group.Interval != nil {
			c.duration(file, where+" group "+group.Name+" interval", string(*group.Interval))
		}
		for _, r := range group.Rules {
			name := r.Alert
			if name == "" {
				name = r.Record
			}
			if name == "" {
				c.fail("%s: %s: a rule of group %s has neither alert nor record", file, where, group.Name)
			}
			at := fmt.Sprintf("%s/%s", group.Name, name)
			if r.For != nil {
				c.duration(file, at+" for", string(*r.For))
			}
			c.expr(file, at, r.Expr.String())
		}
	}
}

func (c *checker) dashboardFile(file string, data []byte) {
	var dashboard map[string]any
	if err := json.Unmarshal(data, &dashboard); err != nil {
		c.fail("%s: invalid JSON: %v", file, err)
		return
	}
	panels, _ := dashboard["panels"].([]any)
	if len(panels) == 0 {
		c.fail("%s: the dashboard has no panels", file)
	}
	for _, p := range panels {
		panel, _ := p.(map[string]any)
		title, _ := panel["title"].(string)
		targets, _ := panel["targets"].([]any)
		for j, t := range targets {
			target, _ := t.(map[string]any)
			text, _ := target["expr"].(string)
			where := fmt.Sprintf("panel %q target %d", title, j)
			if text == "" {
				c.fail("%s: %s: no expr", file, where)
				continue
			}
			text = grafanaInterval.ReplaceAllString(text, "5m")
			text = grafanaVariable.ReplaceAllString(text, "x")
			c.expr(file, where, text)
		}
	}
}

func main() {
	if len(os.Args) < 2 {
		fmt.Fprintln(os.Stderr, "usage: monitoring-check FILE... (YAML objects, JSON dashboards)")
		os.Exit(2)
	}
	c := &checker{parser: parser.NewParser(parser.Options{})}
	for _, file := range os.Args[1:] {
		data, err := os.ReadFile(file)
		if err != nil {
			c.fail("%v", err)
			continue
		}
		if strings.HasSuffix(file, ".json") {
			c.dashboardFile(file, data)
		} else {
			c.yamlFile(file, data)
		}
	}
	out, _ := json.MarshalIndent(c.expressions, "", "  ")
	fmt.Println(string(out))
	for _, e := range c.errors {
		fmt.Fprintln(os.Stderr, "ERROR "+e)
	}
	if len(c.errors) > 0 {
		os.Exit(1)
	}
}

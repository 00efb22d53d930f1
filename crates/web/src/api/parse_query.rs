//! `/api/v1/parse_query`: the syntax tree of a query as JSON, in the shape
//! Prometheus's UI reads for its tree view. Go writes these objects from
//! maps, so keys come out sorted; they are written sorted here too.

use axum::body::Bytes;
use axum::extract::RawQuery;
use axum::http::HeaderMap;
use axum::response::Response;
use ember_model::Matcher;
use ember_promql::ast::{AtModifier, Cardinality, UnaryOp, VectorSelector};
use ember_promql::Expr;
use serde_json::{json, Value};

use super::params::Params;
use super::query::parse_query as parse_param;
use super::{success, ApiError};

pub(crate) async fn parse_query(
    RawQuery(q): RawQuery,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    let p = Params::from_request(q.as_deref(), &headers, &body);
    let expr = parse_param(&p)?;
    Ok(success(translate(&expr), vec![], vec![]))
}

/// The JSON tree of `e`.
pub fn translate(e: &Expr) -> Value {
    match e {
        Expr::Aggregate(a) => json!({
            "expr": translate(&a.expr),
            "grouping": a.grouping,
            "op": a.op.as_str(),
            "param": a.param.as_deref().map_or(Value::Null, translate),
            "type": "aggregation",
            "without": a.without,
        }),
        Expr::Binary(b) => {
            let matching = b.matching.as_ref().map_or(Value::Null, |m| {
                json!({
                    "card": match m.card {
                        Cardinality::OneToOne => "one-to-one",
                        Cardinality::ManyToOne => "many-to-one",
                        Cardinality::OneToMany => "one-to-many",
                        Cardinality::ManyToMany => "many-to-many",
                    },
                    // Fill values (a later Prometheus feature) are never set.
                    "fillValues": {"lhs": null, "rhs": null},
                    "include": m.include,
                    "labels": m.matching_labels,
                    "on": m.on,
                })
            });
            json!({
                "bool": b.return_bool,
                "lhs": translate(&b.lhs),
                "matching": matching,
                "op": b.op.as_str(),
                "rhs": translate(&b.rhs),
                "type": "binaryExpr",
            })
        }
        Expr::Call(c) => json!({
            "args": c.args.iter().map(translate).collect::<Vec<_>>(),
            "func": {
                "argTypes": c.func.arg_types.iter().map(|t| t.as_str()).collect::<Vec<_>>(),
                "name": c.func.name,
                "returnType": c.func.return_type.as_str(),
                "variadic": c.func.variadic,
            },
            "type": "call",
        }),
        Expr::MatrixSelector(m) => {
            let mut v = selector(&m.vs, "matrixSelector");
            v["range"] = json!(m.range);
            v
        }
        Expr::Subquery(s) => {
            let (timestamp, start_or_end) = at(s.at);
            json!({
                // Aligned subqueries (a later Prometheus feature) do not exist here.
                "alignEvalTime": false,
                "expr": translate(&s.expr),
                "offset": s.original_offset,
                "range": s.range,
                "startOrEnd": start_or_end,
                "step": s.step,
                "timestamp": timestamp,
                "type": "subquery",
            })
        }
        Expr::Number(n) => json!({"type": "numberLiteral", "val": format_go_float(n.val)}),
        Expr::Paren(p) => json!({"expr": translate(&p.expr), "type": "parenExpr"}),
        Expr::String(s) => json!({"type": "stringLiteral", "val": s.val}),
        Expr::Unary(u) => json!({
            "expr": translate(&u.expr),
            "op": match u.op {
                UnaryOp::Add => "+",
                UnaryOp::Sub => "-",
            },
            "type": "unaryExpr",
        }),
        Expr::VectorSelector(vs) => selector(vs, "vectorSelector"),
    }
}

fn selector(vs: &VectorSelector, kind: &str) -> Value {
    let (timestamp, start_or_end) = at(vs.at);
    json!({
        // Anchored and smoothed selectors (later Prometheus features) do
        // not exist here.
        "anchored": false,
        "matchers": vs.matchers.iter().map(matcher).collect::<Vec<_>>(),
        "name": vs.name,
        "offset": vs.original_offset,
        "smoothed": false,
        "startOrEnd": start_or_end,
        "timestamp": timestamp,
        "type": kind,
    })
}

fn matcher(m: &Matcher) -> Value {
    json!({"name": m.name, "type": m.op.as_str(), "value": m.value})
}

/// `@` as Prometheus's tree has it: a timestamp in milliseconds, or
/// `start`/`end`.
fn at(a: Option<AtModifier>) -> (Value, Value) {
    match a {
        None => (Value::Null, Value::Null),
        Some(AtModifier::Timestamp(t)) => (json!(t), Value::Null),
        Some(AtModifier::Start) => (Value::Null, json!("start")),
        Some(AtModifier::End) => (Value::Null, json!("end")),
    }
}

/// Go's `strconv.FormatFloat(v, 'f', -1, 64)`: the shortest digits that
/// read back to `v`, never an exponent (Rust's `Display` does the same),
/// and `+Inf`, `-Inf`, `NaN`.
fn format_go_float(v: f64) -> String {
    if v.is_nan() {
        "NaN".to_owned()
    } else if v.is_infinite() {
        if v > 0.0 { "+Inf" } else { "-Inf" }.to_owned()
    } else {
        v.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tree(q: &str) -> Value {
        let opts = ember_promql::ParseOptions { experimental_functions: true, duration_expressions: true };
        translate(&ember_promql::parse_with_options(q, opts).unwrap())
    }

    #[test]
    fn selectors_carry_matchers_offset_and_at() {
        let t = tree(r#"rate(http_requests_total{job=~"api|web"}[5m] offset 1m @ 1700000000)"#);
        assert_eq!(t["type"], "call");
        assert_eq!(t["func"]["name"], "rate");
        assert_eq!(t["func"]["argTypes"], json!(["matrix"]));
        assert_eq!(t["func"]["returnType"], "vector");
        assert_eq!(t["func"]["variadic"], 0);
        let m = &t["args"][0];
        assert_eq!(m["type"], "matrixSelector");
        assert_eq!(m["name"], "http_requests_total");
        assert_eq!(m["range"], 300_000);
        assert_eq!(m["offset"], 60_000);
        assert_eq!(m["timestamp"], 1_700_000_000_000i64);
        assert_eq!(m["startOrEnd"], Value::Null);
        // The name matcher comes last, as in Prometheus's parser.
        assert_eq!(
            m["matchers"],
            json!([
                {"name": "job", "type": "=~", "value": "api|web"},
                {"name": "__name__", "type": "=", "value": "http_requests_total"}
            ])
        );
        assert_eq!(tree("up @ end()")["startOrEnd"], "end");
    }

    #[test]
    fn binary_expressions_have_matching_only_between_vectors() {
        let t = tree("a / on(job) group_left(instance) b");
        assert_eq!(t["type"], "binaryExpr");
        assert_eq!(t["op"], "/");
        assert_eq!(t["matching"]["card"], "many-to-one");
        assert_eq!(t["matching"]["labels"], json!(["job"]));
        assert_eq!(t["matching"]["include"], json!(["instance"]));
        assert_eq!(t["matching"]["on"], true);
        assert_eq!(tree("a and b")["matching"]["card"], "many-to-many");
        let scalar = tree("a > bool 2");
        assert_eq!(scalar["matching"], Value::Null);
        assert_eq!(scalar["bool"], true);
        assert_eq!(scalar["rhs"], json!({"type": "numberLiteral", "val": "2"}));
    }

    #[test]
    fn aggregations_subqueries_and_literals() {
        let t = tree(r#"topk by (job) (3, max_over_time((-x)[1h:5m]))"#);
        assert_eq!(t["type"], "aggregation");
        assert_eq!(t["op"], "topk");
        assert_eq!(t["grouping"], json!(["job"]));
        assert_eq!(t["without"], false);
        assert_eq!(t["param"]["val"], "3");
        let sq = &t["expr"]["args"][0];
        assert_eq!(sq["type"], "subquery");
        assert_eq!(sq["range"], 3_600_000);
        assert_eq!(sq["step"], 300_000);
        assert_eq!(sq["expr"]["type"], "parenExpr");
        assert_eq!(sq["expr"]["expr"]["type"], "unaryExpr");
        assert_eq!(sq["expr"]["expr"]["op"], "-");
        assert_eq!(
            tree(r#"label_replace(x, "a", "b", "c", "d")"#)["args"][1],
            json!({"type": "stringLiteral", "val": "a"})
        );
        assert_eq!(tree("sum(x)")["param"], Value::Null);
    }

    #[test]
    fn numbers_are_written_as_go_writes_them() {
        assert_eq!(format_go_float(1e20), "100000000000000000000");
        assert_eq!(format_go_float(1e-7), "0.0000001");
        assert_eq!(format_go_float(0.1), "0.1");
        assert_eq!(format_go_float(f64::INFINITY), "+Inf");
        assert_eq!(format_go_float(f64::NEG_INFINITY), "-Inf");
        assert_eq!(format_go_float(f64::NAN), "NaN");
    }

    #[tokio::test]
    async fn served_with_the_envelope_and_bad_queries_are_400() {
        use axum::body::Body;
        use axum::http::Request;
        use http_body_util::BodyExt;
        use tower::ServiceExt;

        async fn get(uri: &str) -> (u16, Value) {
            let state = crate::AppState::new(crate::Options::default(), None, vec![]);
            let resp =
                crate::router(state).oneshot(Request::get(uri).body(Body::empty()).unwrap()).await.unwrap();
            let status = resp.status().as_u16();
            let bytes = resp.into_body().collect().await.unwrap().to_bytes();
            (status, serde_json::from_slice(&bytes).unwrap())
        }
        let (status, v) = get("/api/v1/parse_query?query=up%7Bjob%3D%22a%22%7D").await;
        assert_eq!(status, 200, "{v}");
        assert_eq!(v["status"], "success");
        assert_eq!(v["data"]["type"], "vectorSelector");
        assert_eq!(v["data"]["matchers"][0], json!({"name": "job", "type": "=", "value": "a"}));
        let (status, v) = get("/api/v1/parse_query?query=sum(").await;
        assert_eq!(status, 400, "{v}");
        assert_eq!(v["errorType"], "bad_data");
        assert!(
            v["error"].as_str().unwrap().starts_with("invalid parameter \"query\": 1:5: parse error"),
            "{v}"
        );
    }
}

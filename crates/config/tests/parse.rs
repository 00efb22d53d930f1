#![allow(clippy::unwrap_used)]
use ember_config::{parse_str, Action, ConfigError, Duration};

fn err(yaml: &str) -> ConfigError {
    parse_str(yaml).expect_err("config should be rejected")
}

#[test]
fn empty_config_has_prometheus_defaults() {
    let c = parse_str("").unwrap();
    assert_eq!(c.global.scrape_interval, Duration::from_secs(60));
    assert_eq!(c.global.scrape_timeout, Duration::from_secs(10));
    assert_eq!(c.global.evaluation_interval, Duration::from_secs(60));
    assert!(c.scrape_configs.is_empty());
    // An explicitly empty global block is the default block too.
    assert_eq!(parse_str("global:\n").unwrap().global, c.global);
}

#[test]
fn scrape_config_defaults_and_inheritance() {
    let c = parse_str(
        "global:\n  scrape_interval: 15s\n  sample_limit: 7\nscrape_configs:\n  - job_name: a\n  - job_name: b\n    scrape_interval: 5s\n    sample_limit: 9\n",
    )
    .unwrap();
    let a = &c.scrape_configs[0];
    assert_eq!(a.scrape_interval, Duration::from_secs(15));
    assert_eq!(a.scrape_timeout, Duration::from_secs(10));
    assert_eq!(a.metrics_path, "/metrics");
    assert_eq!(a.scheme, "http");
    assert!(a.honor_timestamps);
    assert!(!a.honor_labels);
    assert!(a.follow_redirects && a.enable_http2 && a.enable_compression);
    assert_eq!(a.sample_limit, 7);
    assert_eq!(
        a.scrape_protocols.as_deref().unwrap(),
        ["OpenMetricsText1.0.0", "OpenMetricsText0.0.1", "PrometheusText1.0.0", "PrometheusText0.0.4"]
    );
    let b = &c.scrape_configs[1];
    // The timeout defaults to min(global timeout, own interval).
    assert_eq!(b.scrape_timeout, Duration::from_secs(5));
    assert_eq!(b.sample_limit, 9);
}

#[test]
fn global_timeout_clamped_to_short_interval() {
    let c = parse_str("global:\n  scrape_interval: 3s\n").unwrap();
    assert_eq!(c.global.scrape_timeout, Duration::from_secs(3));
}

#[test]
fn errors_carry_line_column_and_field() {
    let e = err("scrape_configs:\n  - job_name: a\n    scrape_interval: 5x\n");
    assert_eq!((e.line, e.column), (Some(3), Some(22)));
    assert_eq!(e.field.as_deref(), Some("scrape_configs[0].scrape_interval"));
    assert_eq!(e.message, "not a valid duration string: \"5x\"");
    assert_eq!(
        e.to_string(),
        "line 3, column 22: field scrape_configs[0].scrape_interval: not a valid duration string: \"5x\""
    );

    let e = err("scrape_configs:\n  - job_name: a\n    honor_lables: true\n");
    assert_eq!(e.line, Some(3));
    assert_eq!(e.field.as_deref(), Some("scrape_configs[0].honor_lables"));
    assert!(e.message.contains("unknown field `honor_lables`"), "{}", e.message);

    let e = err("global:\n  scrape_interval: 1m\n  scrape_interval: 2m\n");
    assert_eq!(e.line, Some(3));
    assert!(e.message.contains("duplicate mapping key: scrape_interval"), "{}", e.message);

    let e = err("scrape_configs:\n  - job_name: a\n    relabel_configs:\n      - source_labels: [x]\n        regex: '(['\n        target_label: y\n");
    assert_eq!(e.line, Some(5));
    assert_eq!(e.field.as_deref(), Some("scrape_configs[0].relabel_configs[0].regex"));
    assert!(e.message.starts_with("error parsing regexp"), "{}", e.message);
}

#[test]
fn validation_errors_point_at_their_section() {
    let e = err("scrape_configs:\n  - job_name: a\n  - job_name: b\n    scrape_interval: 5s\n    scrape_timeout: 6s\n");
    assert_eq!(e.line, Some(3));
    assert_eq!(e.field.as_deref(), Some("scrape_configs[1]"));
    assert_eq!(
        e.message,
        "scrape timeout greater than scrape interval for scrape config with job name \"b\""
    );

    let e = err("scrape_configs:\n  - job_name: a\n    relabel_configs:\n      - action: keep\n        regex: x\n      - action: hashmod\n        source_labels: [a]\n        target_label: b\n");
    assert_eq!(e.line, Some(6));
    assert_eq!(e.field.as_deref(), Some("scrape_configs[0].relabel_configs[1]"));
    assert_eq!(e.message, "relabel configuration for hashmod requires non-zero modulus");

    let e = err("scrape_configs:\n  - job_name: x\n  - job_name: x\n");
    assert_eq!(e.message, "found multiple scrape configs with job name \"x\"");
    assert_eq!(e.line, Some(3));
}

#[test]
fn yaml11_scalars_stay_strings_in_string_fields() {
    let c = parse_str(
        "scrape_configs:\n  - job_name: no\n    static_configs:\n      - targets: [a:1]\n        labels: {a: no, b: on, c: 0777, d: 1e3, e: ~, f: 0x1F, g: 1.50}\n",
    )
    .unwrap();
    let sc = &c.scrape_configs[0];
    assert_eq!(sc.job_name, "no");
    let l = &sc.static_configs[0].labels;
    assert_eq!(l["a"], "no");
    assert_eq!(l["b"], "on");
    assert_eq!(l["c"], "0777");
    assert_eq!(l["d"], "1e3");
    assert_eq!(l["e"], "", "null is the empty string, as in Go");
    assert_eq!(l["f"], "0x1F");
    assert_eq!(l["g"], "1.50");
}

#[test]
fn yaml11_booleans_fill_bool_fields() {
    let c = parse_str("scrape_configs:\n  - job_name: a\n    honor_labels: yes\n    honor_timestamps: off\n")
        .unwrap();
    assert!(c.scrape_configs[0].honor_labels);
    assert!(!c.scrape_configs[0].honor_timestamps);
}

#[test]
fn relabel_defaults() {
    let c = parse_str("scrape_configs:\n  - job_name: a\n    relabel_configs:\n      - target_label: x\n")
        .unwrap();
    let r = &c.scrape_configs[0].relabel_configs[0];
    assert_eq!(r.action, Action::Replace);
    assert_eq!(r.separator, ";");
    assert_eq!(r.regex.as_str(), "(.*)");
    assert_eq!(r.replacement, "$1");
    let c = parse_str("scrape_configs:\n  - job_name: a\n    relabel_configs:\n      - action: LabelMap\n        regex: a_(.*)\n").unwrap();
    assert_eq!(c.scrape_configs[0].relabel_configs[0].action, Action::LabelMap);
}

#[test]
fn relabel_validation_rules() {
    let cases = [
        (
            "action: replace\n        source_labels: [a]",
            "relabel configuration for replace action requires 'target_label' value",
        ),
        (
            "action: uppercase\n        source_labels: [a]",
            "relabel configuration for uppercase action requires 'target_label' value",
        ),
        (
            "action: keepequal\n        source_labels: [a]",
            "relabel configuration for keepequal action requires 'target_label' value",
        ),
        (
            "action: dropequal\n        source_labels: [a]\n        target_label: b\n        regex: x",
            "dropequal action requires only 'source_labels' and `target_label`, and no other fields",
        ),
        (
            "action: labelkeep\n        regex: a\n        target_label: b",
            "labelkeep action requires only 'regex', and no other fields",
        ),
        (
            "action: labeldrop\n        regex: a\n        separator: ','",
            "labeldrop action requires only 'regex', and no other fields",
        ),
        (
            "action: uppercase\n        source_labels: [a]\n        target_label: b\n        replacement: x",
            "'replacement' can not be set for uppercase action",
        ),
    ];
    for (rule, msg) in cases {
        let yaml = format!("scrape_configs:\n  - job_name: a\n    relabel_configs:\n      - {rule}\n");
        assert_eq!(err(&yaml).message, msg, "{rule}");
    }
}

#[test]
fn legacy_name_validation_checks_target_labels() {
    let yaml = "global:\n  metric_name_validation_scheme: legacy\nscrape_configs:\n  - job_name: a\n    relabel_configs:\n      - source_labels: [a]\n        target_label: 'b-c'\n";
    assert_eq!(err(yaml).message, "\"b-c\" is invalid 'target_label' for replace action");
    // With UTF-8 names (the default) the same label name is fine.
    parse_str(&yaml.replace("legacy", "utf8")).unwrap();
    // $-references are allowed in legacy target labels.
    parse_str(&yaml.replace("'b-c'", "'b_${1}'")).unwrap();
}

#[test]
fn bearer_token_becomes_authorization() {
    let c = parse_str("scrape_configs:\n  - job_name: a\n    bearer_token: tok\n").unwrap();
    let auth = c.scrape_configs[0].authorization.as_ref().unwrap();
    assert_eq!(auth.kind, "Bearer");
    assert_eq!(auth.credentials.expose(), "tok");
    assert!(c.scrape_configs[0].bearer_token.is_empty());
    let c = parse_str("scrape_configs:\n  - job_name: a\n    authorization:\n      credentials_file: /t\n")
        .unwrap();
    assert_eq!(c.scrape_configs[0].authorization.as_ref().unwrap().kind, "Bearer");
}

#[test]
fn secrets_are_redacted_on_output() {
    let c = parse_str(
        "scrape_configs:\n  - job_name: a\n    basic_auth: {username: u, password: hunter2}\n  - job_name: b\n    authorization: {credentials: tok3n}\n    tls_config: {cert: c, key: k3y}\nremote_write:\n  - url: http://u:pw123@h/w\n",
    )
    .unwrap();
    let y = c.to_yaml();
    for secret in ["hunter2", "tok3n", "k3y", "pw123"] {
        assert!(!y.contains(secret), "{secret} leaked:\n{y}");
    }
    assert!(y.contains("password: <secret>"), "{y}");
    assert!(!format!("{c:?}").contains("hunter2"));
}

#[test]
fn output_has_defaults_and_parses_back_to_the_same_config() {
    let src =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../../testdata/config/good_full.yml"))
            .unwrap();
    let c = parse_str(&src).unwrap();
    let y = c.to_yaml();
    assert!(y.contains("scrape_timeout: 5s"));
    assert!(y.contains("metrics_path: /metrics"));
    assert!(y.contains("max_shards: 10"), "partial queue_config keeps its own values");
    assert!(y.contains("max_samples_per_send: 2000"), "and the defaults of the rest");
    assert!(y.contains("refresh_interval: 1m"));
    assert!(
        y.contains("  - source_labels: [__address__]\n    separator: ;\n    regex: ([^:]+):\\d+\n"),
        "{y}"
    );
    // Without secrets in the input, the output is a faithful config.
    let back = parse_str(&y).unwrap();
    assert_eq!(back.global, c.global);
    assert_eq!(back.remote_write.len(), 1);
    assert_eq!(back.remote_write[0].queue_config, c.remote_write[0].queue_config);
    assert_eq!(back.scrape_configs.len(), c.scrape_configs.len());
    assert_eq!(back.to_yaml(), y);
}

#[test]
fn remote_write_defaults() {
    let c = parse_str(
        "remote_write:\n  - url: http://localhost:9201/write\n    queue_config:\n      max_shards: 3\n",
    )
    .unwrap();
    let rw = &c.remote_write[0];
    assert_eq!(rw.remote_timeout, Duration::from_secs(30));
    assert_eq!(rw.queue_config.max_shards, 3);
    assert_eq!(rw.queue_config.capacity, 10000);
    assert_eq!(rw.queue_config.min_backoff, Duration::from_millis(30));
    assert!(rw.metadata_config.send);
    assert!(!rw.enable_http2, "remote write defaults HTTP/2 off");
    let e = err("remote_write:\n  - url: http://a\n    basic_auth: {username: u}\n    authorization: {credentials: c}\n");
    assert_eq!(e.message, "at most one of basic_auth, oauth2 & authorization must be configured");
}

#[test]
fn remote_read_and_alerting_defaults() {
    let c = parse_str("remote_read:\n  - url: http://r/read\nalerting:\n  alertmanagers:\n    - static_configs:\n        - targets: [am:9093]\n").unwrap();
    assert_eq!(c.remote_read[0].remote_timeout, Duration::from_secs(60));
    assert!(c.remote_read[0].filter_external_labels);
    let am = &c.alerting.alertmanagers[0];
    assert_eq!(am.timeout, Duration::from_secs(10));
    assert_eq!(am.api_version, "v2");
    assert_eq!(am.scheme, "http");
}

#[test]
fn file_sd_defaults_and_relative_paths() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("prometheus.yml");
    std::fs::write(&p, "rule_files: [r.yml]\nscrape_configs:\n  - job_name: a\n    file_sd_configs:\n      - files: [t/*.json, /abs/x.yml]\n").unwrap();
    let c = ember_config::load_file(&p).unwrap();
    let f = &c.scrape_configs[0].file_sd_configs[0];
    assert_eq!(f.refresh_interval, Duration::from_secs(300));
    assert_eq!(f.files[0], dir.path().join("t/*.json").to_string_lossy());
    assert_eq!(f.files[1], "/abs/x.yml");
    assert_eq!(c.rule_files[0], dir.path().join("r.yml").to_string_lossy());
}

#[test]
fn tls_and_oauth2_files_are_relative_to_the_config() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("prometheus.yml");
    std::fs::write(
        &p,
        "scrape_configs:\n  - job_name: a\n    tls_config: {ca_file: ca.pem, cert_file: c.pem, key_file: /abs/k.pem}\n    oauth2:\n      client_id: i\n      client_secret_file: secret\n      token_url: http://idp/t\n      tls_config: {ca_file: idp-ca.pem}\n",
    )
    .unwrap();
    let c = ember_config::load_file(&p).unwrap();
    let sc = &c.scrape_configs[0];
    let rel = |f: &str| dir.path().join(f).to_string_lossy().into_owned();
    assert_eq!(sc.tls_config.ca_file, rel("ca.pem"));
    assert_eq!(sc.tls_config.cert_file, rel("c.pem"));
    assert_eq!(sc.tls_config.key_file, "/abs/k.pem");
    let o = sc.oauth2.as_ref().unwrap();
    assert_eq!(o.client_secret_file, rel("secret"));
    assert_eq!(o.tls_config.ca_file, rel("idp-ca.pem"));
}

#[test]
fn load_file_error_names_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("bad.yml");
    std::fs::write(&p, "global:\n  scrape_interval: nope\n").unwrap();
    let e = ember_config::load_file(&p).unwrap_err();
    assert_eq!(e.file.as_deref(), Some(p.as_path()));
    assert!(e.to_string().starts_with(&format!("parsing YAML file {}: line 2", p.display())), "{e}");
    let missing = ember_config::load_file(dir.path().join("nope.yml")).unwrap_err();
    assert!(missing.message.starts_with("open "), "{missing}");
}

#[test]
fn scrape_config_files_are_loaded_and_checked() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("jobs")).unwrap();
    std::fs::write(
        dir.path().join("jobs/a.yml"),
        "scrape_configs:\n  - job_name: extra\n    scrape_interval: 7s\n",
    )
    .unwrap();
    std::fs::write(dir.path().join("jobs/ignored.txt"), "not yaml: [").unwrap();
    let p = dir.path().join("prometheus.yml");
    std::fs::write(&p, "global:\n  scrape_timeout: 3s\nscrape_config_files: [jobs/*.yml]\nscrape_configs:\n  - job_name: main\n").unwrap();
    let c = ember_config::load_file(&p).unwrap();
    let all = c.all_scrape_configs().unwrap();
    assert_eq!(all.iter().map(|s| s.job_name.as_str()).collect::<Vec<_>>(), ["main", "extra"]);
    assert_eq!(all[1].scrape_timeout, Duration::from_secs(3), "globals apply to included jobs");

    std::fs::write(dir.path().join("jobs/b.yml"), "scrape_configs:\n  - job_name: main\n").unwrap();
    let e = c.all_scrape_configs().unwrap_err();
    assert!(
        e.message.contains(
            "found multiple scrape configs with job name \"main\", first found in main config file"
        ),
        "{e}"
    );
    assert!(e.file.unwrap().ends_with("jobs/b.yml"));
}

#[test]
fn body_size_limit_and_scrape_protocols() {
    let c = parse_str("scrape_configs:\n  - job_name: a\n    body_size_limit: 10MB\n    scrape_protocols: [PrometheusText0.0.4]\n    fallback_scrape_protocol: PrometheusText0.0.4\n").unwrap();
    assert_eq!(c.scrape_configs[0].body_size_limit.0, 10 << 20);
    let e = err("scrape_configs:\n  - job_name: a\n    scrape_protocols: []\n");
    assert_eq!(e.message, "scrape_protocols cannot be empty for scrape config with job name \"a\"");
    let e = err("scrape_configs:\n  - job_name: a\n    scrape_protocols: [PrometheusText0.0.4, prometheustext0.0.4]\n");
    assert!(e.message.starts_with("duplicated protocol in scrape_protocols"), "{}", e.message);
    let e = err("scrape_configs:\n  - job_name: a\n    fallback_scrape_protocol: nope\n");
    assert!(e.message.starts_with("invalid fallback_scrape_protocol for scrape config with job name \"a\": unknown scrape protocol nope"), "{}", e.message);
}

#[test]
fn external_label_values_expand_environment_like_go() {
    let env = |n: &str| match n {
        "HOST" => "h1".to_owned(),
        "1" => "one".to_owned(),
        _ => String::new(),
    };
    let x = |s: &str| ember_config::expand_env(s, env);
    assert_eq!(x("${HOST}-$HOST.x"), "h1-h1.x");
    assert_eq!(x("cost $$5"), "cost $5");
    assert_eq!(x("$UNSET|"), "|");
    assert_eq!(x("a$"), "a$", "a trailing $ stays");
    assert_eq!(x("a$.b"), "a$.b", "$ before a non-name stays");
    assert_eq!(x("${}x"), "x", "bad syntax is eaten");
    assert_eq!(x("${HOST"), "HOST", "an unclosed brace eats only the dollar and brace");
    assert_eq!(x("$1st"), "onest", "a digit is a one-character name");
    assert_eq!(x("plain"), "plain");
}

#[test]
fn anchors_and_merge_keys_work_as_in_go_yaml() {
    let c = parse_str(
        "scrape_configs:\n  - &base\n    job_name: a\n    scrape_interval: 5s\n    metrics_path: /m\n  - <<: *base\n    job_name: b\n",
    )
    .unwrap();
    assert_eq!(c.scrape_configs[1].job_name, "b");
    assert_eq!(c.scrape_configs[1].metrics_path, "/m");
    assert_eq!(c.scrape_configs[1].scrape_interval, Duration::from_secs(5));
}

#[test]
fn oauth2_and_tls_versions() {
    let c = parse_str(
        "scrape_configs:\n  - job_name: a\n    oauth2:\n      client_id: id\n      client_secret: s3cr3t\n      token_url: http://idp/token\n      scopes: [a, b]\n    tls_config:\n      min_version: TLS12\n",
    )
    .unwrap();
    let sc = &c.scrape_configs[0];
    assert_eq!(sc.oauth2.as_ref().unwrap().scopes, ["a", "b"]);
    assert_eq!(sc.tls_config.min_version, Some(ember_config::TlsVersion::Tls12));
    assert!(!c.to_yaml().contains("s3cr3t"));
    let e = err("scrape_configs:\n  - job_name: a\n    oauth2:\n      client_id: id\n");
    assert_eq!(e.message, "oauth2 token_url must be configured");
    let e = err("scrape_configs:\n  - job_name: a\n    tls_config:\n      min_version: TLS99\n");
    assert_eq!(e.message, "unknown TLS version: TLS99");
    assert_eq!(e.field.as_deref(), Some("scrape_configs[0].tls_config.min_version"));
    let e = err("scrape_configs:\n  - job_name: a\n    basic_auth: {username: u}\n    oauth2: {client_id: i, token_url: http://t}\n");
    assert_eq!(e.message, "at most one of basic_auth, oauth2 & authorization must be configured");
}

#[test]
fn null_sections_are_empty() {
    let c = parse_str("global:\nscrape_configs:\nrule_files:\nremote_write:\nalerting:\n").unwrap();
    assert!(c.scrape_configs.is_empty() && c.rule_files.is_empty() && c.remote_write.is_empty());
    assert_eq!(c.global.scrape_interval, Duration::from_secs(60));
}

#[test]
fn unknown_service_discovery_is_rejected_with_its_name() {
    // Only static and file discovery exist in ember so far.
    let e = err("scrape_configs:\n  - job_name: a\n    kubernetes_sd_configs:\n      - role: pod\n");
    assert_eq!(e.field.as_deref(), Some("scrape_configs[0].kubernetes_sd_configs"));
    assert_eq!(e.line, Some(3));
}

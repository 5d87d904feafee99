//! The node configuration's unit tests: parsing, validation, the shipped example.

mod parsing {
    use super::super::*;

    #[test]
    fn errors_name_the_key_and_file() {
        let e = NodeConfig::parse("prot = 1\n", "node.toml")
            .unwrap_err()
            .to_string();
        assert!(e.contains("node.toml") && e.contains("prot"), "{e}");
        let e = NodeConfig::parse("[persistence]\nappendfsync = \"sometimes\"\n", "n.toml")
            .unwrap_err()
            .to_string();
        assert!(e.contains("n.toml") && e.contains("sometimes"), "{e}");
        let e = NodeConfig::parse("timeout = \"forever\"\n", "n.toml")
            .unwrap_err()
            .to_string();
        assert!(e.contains("forever") && e.contains("line 1"), "{e}");
        let e = NodeConfig::parse("databases = 0\n", "n.toml")
            .unwrap_err()
            .to_string();
        assert!(e.contains("databases"), "{e}");
    }

    #[test]
    fn replication_and_admin_are_checked() {
        for (text, key) in [
            ("mode = \"managed\"\n", "admin.token"),
            ("[replication]\nreplicaof = \"nohost\"\n", "replicaof"),
            ("[replication]\nreplicaof = \"h:0\"\n", "replicaof"),
            ("[replication]\nbacklog_size = 10\n", "backlog_size"),
            (
                "[replication]\ntimeout = \"1s\"\nping_period = \"2s\"\n",
                "timeout",
            ),
            (
                "[admin]\ntoken_file = \"/nonexistent/token\"\n",
                "token_file",
            ),
            ("[admin]\nbind = \"not an ip\"\n", "admin.bind"),
            ("lease_reads = \"no\"\n", "lease_reads"),
            (
                "mode = \"managed\"\n[replication]\nreplicaof = \"h:1\"\n[admin]\ntoken = \"t\"\n",
                "replicaof",
            ),
        ] {
            let e = NodeConfig::parse(text, "n.toml").unwrap_err().to_string();
            assert!(e.contains(key) && e.contains("n.toml"), "{text:?}: {e}");
        }
        let c = NodeConfig::parse(
            "mode = \"managed\"\n[admin]\ntoken = \"t\"\n[replication]\nsync_replicas = 1\n",
            "n.toml",
        )
        .unwrap();
        assert_eq!(
            (c.mode, c.admin_token().as_deref()),
            (Mode::Managed, Some("t"))
        );
        assert_eq!(
            parse_host_port("[::1]:6379").map(|h| (h.host().to_string(), h.port())),
            Some(("::1".into(), 6379))
        );
    }

    #[test]
    fn sizes_and_durations() {
        let c = NodeConfig::parse(
            "timeout = \"2s\"\n[limits]\nproto_max_bulk_len = \"1mb\"\n",
            "x",
        )
        .unwrap();
        assert_eq!(c.timeout, Duration::from_secs(2));
        assert_eq!(c.limits.proto_max_bulk_len, 1024 * 1024);
        assert_eq!(parse_size("5k"), Some(5000));
        assert_eq!(parse_size("5xb"), None);
    }
}

mod example_file {
    /// The commented example in config/ must always parse to the defaults it documents.
    #[test]
    fn shipped_example_parses() {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../../config/node.toml");
        let c = super::super::NodeConfig::load(std::path::Path::new(path)).unwrap();
        let d = super::super::NodeConfig::default();
        assert_eq!(
            (c.port, c.databases, c.maxclients),
            (d.port, d.databases, d.maxclients)
        );
        assert_eq!(c.limits.proto_max_bulk_len, d.limits.proto_max_bulk_len);
        assert_eq!(c.persistence.appendfsync, d.persistence.appendfsync);
        assert_eq!((c.mode, c.lease_reads), (d.mode, d.lease_reads));
        let (r, rd) = (&c.replication, &d.replication);
        assert_eq!(
            (
                r.backlog_size,
                r.priority,
                r.sync_replicas,
                r.sync_timeout,
                r.timeout
            ),
            (
                rd.backlog_size,
                rd.priority,
                rd.sync_replicas,
                rd.sync_timeout,
                rd.timeout
            )
        );
        assert_eq!(
            (r.output_buffer_limit, r.min_replicas_max_lag, r.ping_period),
            (
                rd.output_buffer_limit,
                rd.min_replicas_max_lag,
                rd.ping_period
            )
        );
        assert_eq!((c.admin.port, &c.admin.bind), (d.admin.port, &d.admin.bind));
    }
}

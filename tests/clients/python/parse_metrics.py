"""Parses a Prometheus text-format page (stdin) with the reference parser of the Python
client library, and prints every sample as one line: `name{k="v",...} value`, labels sorted.
A page the parser rejects makes it exit non-zero with the parser's error."""

import sys

from prometheus_client.parser import text_string_to_metric_families


def main() -> None:
    page = sys.stdin.read()
    for family in text_string_to_metric_families(page):
        for s in family.samples:
            labels = ",".join(f'{k}="{v}"' for k, v in sorted(s.labels.items()))
            print(f"{family.type} {s.name}{{{labels}}} {s.value!r}")


if __name__ == "__main__":
    main()

"""What the client returns, readable: plain lists and dicts that also print as tables in a
terminal (``print``) and in notebooks (``_repr_html_``)."""

import html


def _text(value):
    if value is None:
        return ""
    if isinstance(value, float):
        return f"{value:.6g}"
    return str(value)


def _bytes(n):
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if abs(n) < 1024 or unit == "TiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return str(n)


def text_table(headers, rows):
    """Aligned columns with a header line."""
    cells = [[_text(v) for v in row] for row in rows]
    widths = [max([len(h)] + [len(r[i]) for r in cells]) for i, h in enumerate(headers)]
    lines = ["  ".join(h.ljust(w) for h, w in zip(headers, widths))]
    lines.append("  ".join("-" * w for w in widths))
    lines += ["  ".join(c.ljust(w) for c, w in zip(r, widths)) for r in cells]
    return "\n".join(lines)


def html_table(headers, rows):
    head = "".join(f"<th>{html.escape(h)}</th>" for h in headers)
    body = "".join("<tr>" + "".join(f"<td>{html.escape(_text(v))}</td>" for v in row) + "</tr>" for row in rows)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


class Rows(list):
    """Rows of values (lists), with the column ``names``."""

    def __init__(self, rows, names):
        super().__init__(rows)
        self.names = list(names)

    def __str__(self):
        return text_table(self.names, self)

    def _repr_html_(self):
        return html_table(self.names, self)


class Records(list):
    """Dicts (frames, column summaries); printed with the fields that matter most."""

    def __init__(self, records, shown):
        super().__init__(records)
        self.shown = list(shown)

    def _cells(self):
        return [[r.get(f) for f in self.shown] for r in self]

    def __str__(self):
        return text_table(self.shown, self._cells())

    def _repr_html_(self):
        return html_table(self.shown, self._cells())


class CloudStatus(dict):
    """``GET /3/Cloud`` (H2O's field names), printed as a status line and one line per node."""

    _NODE_FIELDS = ("ip_port", "healthy", "host", "pid", "num_cpus", "max_mem", "free_mem", "sys_load")

    def _headline(self):
        health = "healthy" if self.get("cloud_healthy") else f"UNHEALTHY ({self.get('bad_nodes', '?')} bad nodes)"
        locked = ", locked" if self.get("locked") else ""
        return (
            f"cloud {self.get('cloud_name')!r}: {self.get('cloud_size')} nodes, {health}{locked}, "
            f"version {self.get('version')}, up {self.get('cloud_uptime_millis', 0) / 1000:.0f} s"
        )

    def _nodes(self):
        leader = self.get("leader_idx", -1)
        rows = []
        for i, node in enumerate(self.get("nodes", [])):
            row = [node.get(f) for f in self._NODE_FIELDS]
            row[5] = _bytes(row[5] or 0)
            row[6] = _bytes(row[6] or 0)
            rows.append(row + ["leader" if i == leader else ""])
        return list(self._NODE_FIELDS) + ["role"], rows

    def __str__(self):
        headers, rows = self._nodes()
        return self._headline() + "\n" + text_table(headers, rows)

    def _repr_html_(self):
        headers, rows = self._nodes()
        return f"<p>{html.escape(self._headline())}</p>" + html_table(headers, rows)

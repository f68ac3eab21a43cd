"""The rsyslog relay's configuration and its example environment agree: every variable the
configuration reads is documented in its header and set in ``relay.env``, and nothing else is
(``tests/e2e/test_rsyslog_relay.py`` runs it in the real rsyslogd)."""

from __future__ import annotations

import re

from pipeline.resources import DEPLOY

RELAY = DEPLOY / "rsyslog"


def test_the_variables_read_documented_and_set_are_the_same() -> None:
    conf = (RELAY / "decryptscope-relay.conf").read_text()
    read = set(re.findall(r"`echo \$(DSRELAY_[A-Z_]+)`", conf))
    documented = set(re.findall(r"^#\s+(DSRELAY_[A-Z_]+)", conf, re.MULTILINE))
    env = (RELAY / "relay.env").read_text()
    example = set(re.findall(r"^(DSRELAY_[A-Z_]+)=", env, re.MULTILINE))
    assert len(read) >= 10
    assert read == documented == example


def test_every_forwarding_action_has_a_disk_assisted_queue_that_never_gives_up() -> None:
    conf = (RELAY / "decryptscope-relay.conf").read_text()
    actions = re.findall(r'action\(type="omfwd".*?\)\n', conf, re.DOTALL)
    assert len(actions) == 3
    for action in actions:
        assert 'TCP_Framing="octet-counted"' in action
        assert 'template="DecryptscopeRaw"' in action
        assert 'queue.type="LinkedList"' in action and "queue.filename=" in action
        assert 'queue.saveOnShutdown="on"' in action
        assert 'action.resumeRetryCount="-1"' in action
    assert 'string="%rawmsg%"' in conf

"""NOTIFY (RFC 5465): events pushed between commands and during IDLE, over raw sockets.

Dovecot 2.3 delivers its NOTIFY events a second or more late and accepts event lists RFC
5465 §5 forbids, so these replies are checked against the RFC rather than against it.
"""

from __future__ import annotations

import re

from conftest import ALICE, deliver
from test_imap import imap_raw, tagged_reply

MESSAGE = b"From: n@example.org\r\nSubject: notify\r\n\r\nhello\r\n"
STATUS = rb'^\* STATUS "%s" \(MESSAGES %d UIDNEXT %d UIDVALIDITY \d+ UNSEEN %d\)\r\n$'


def command(client, tag: str, text: str) -> list[bytes]:
    """Sends a command; its untagged lines, then the tagged one."""
    client.send(f"{tag} {text}\r\n".encode())
    lines = []
    while not lines or not lines[-1].startswith(tag.encode() + b" "):
        line = client.readline()
        assert line, "connection closed"
        lines.append(line)
    return lines


def append(client, tag: str, mailbox: str, flags: str = "") -> None:
    client.send(f"{tag} APPEND {mailbox} ({flags}) {{{len(MESSAGE)}+}}\r\n".encode() + MESSAGE + b"\r\n")
    assert tagged_reply(client, tag.encode()).startswith(tag.encode() + b" OK")


def test_notify_sends_events_as_they_happen(make_server):
    server = make_server(allow_plaintext_on_loopback=True)
    with imap_raw(server) as watcher, imap_raw(server) as changer:
        assert b" NOTIFY" in command(watcher, "c", "CAPABILITY")[0]
        assert command(changer, "a", "CREATE n1")[-1] == b"a OK CREATE completed\r\n"
        assert command(watcher, "s", "SELECT INBOX")[-1] == b"s OK [READ-WRITE] SELECT completed\r\n"
        lines = command(watcher, "n", "NOTIFY SET STATUS (selected (MessageNew (UID FLAGS) MessageExpunge "
                                      "FlagChange)) (personal (MessageNew MessageExpunge MailboxName "
                                      "SubscriptionChange))")
        assert lines[-1] == b"n OK NOTIFY completed\r\n"
        # One STATUS per watched mailbox but the selected one, before the tagged OK.
        names = [re.match(rb'\* STATUS "([^"]+)"', line).group(1) for line in lines[:-1]]
        assert b"INBOX" not in names and b"n1" in names and b"Sent" in names, lines
        assert any(re.match(STATUS % (b"n1", 0, 1, 0), line) for line in lines), lines

        # Nothing is asked: the events come by themselves.
        append(changer, "b", "n1")
        assert re.match(STATUS % (b"n1", 1, 2, 1), watcher.readline())
        deliver(server, ALICE)
        assert watcher.readline() == b"* 1 EXISTS\r\n"
        assert watcher.readline() == b"* 1 RECENT\r\n"
        assert watcher.readline() == b"* 1 FETCH (UID 1 FLAGS (\\Recent))\r\n"
        command(changer, "c", "CREATE n2")
        assert watcher.readline() == b'* LIST () "/" "n2"\r\n'
        command(changer, "d", "RENAME n2 n3")
        assert watcher.readline() == b'* LIST () "/" "n3" ("OLDNAME" ("n2"))\r\n'
        command(changer, "e", "SUBSCRIBE n3")
        assert watcher.readline() == b'* LIST (\\Subscribed) "/" "n3"\r\n'
        # The subscription outlives the mailbox.
        command(changer, "f", "DELETE n3")
        assert watcher.readline() == b'* LIST (\\NonExistent) "/" "n3"\r\n'
        command(changer, "g", "SELECT INBOX")
        command(changer, "h", "STORE 1 +FLAGS (\\Flagged)")
        # FlagChange's FETCH names the UID (RFC 5465 §5.1).
        assert watcher.readline() == b"* 1 FETCH (UID 1 FLAGS (\\Flagged \\Recent))\r\n"
        command(changer, "i", "STORE 1 +FLAGS.SILENT (\\Deleted)")
        assert watcher.readline() == b"* 1 FETCH (UID 1 FLAGS (\\Flagged \\Deleted \\Recent))\r\n"
        # `selected`: an expunge is told at once, no command needed.
        command(changer, "j", "EXPUNGE")
        assert watcher.readline() == b"* 1 EXPUNGE\r\n"

        assert command(watcher, "k", "NOTIFY NONE") == [b"k OK NOTIFY completed\r\n"]
        append(changer, "l", "n1")
        assert command(watcher, "m", "NOOP") == [b"m OK NOOP completed\r\n"]
        command(changer, "n", "CREATE n4")
        assert command(watcher, "o", "NOOP") == [b"o OK NOOP completed\r\n"]


def test_selected_delayed_keeps_expunges_for_a_command(make_server):
    server = make_server(allow_plaintext_on_loopback=True)
    deliver(server, ALICE)
    deliver(server, ALICE)
    with imap_raw(server) as watcher, imap_raw(server) as changer:
        command(watcher, "a", "SELECT INBOX")
        assert command(watcher, "b", "NOTIFY SET (selected-delayed (MessageNew MessageExpunge))") == [
            b"b OK NOTIFY completed\r\n"]
        command(changer, "c", "SELECT INBOX")
        # No FlagChange asked: the \\Deleted is not told.
        command(changer, "d", "STORE 1 +FLAGS.SILENT (\\Deleted)")
        command(changer, "e", "EXPUNGE")
        deliver(server, ALICE)
        # The expunged message still counts until a command allows EXPUNGE.
        assert watcher.readline() == b"* 3 EXISTS\r\n"
        assert watcher.readline() == b"* 3 RECENT\r\n"
        assert command(watcher, "f", "NOOP") == [b"* 1 EXPUNGE\r\n", b"f OK NOOP completed\r\n"]
        # IDLE allows expunges: they come at once there (RFC 5465 §6.1).
        watcher.send(b"g IDLE\r\n")
        assert watcher.readline() == b"+ idling\r\n"
        command(changer, "h", "STORE 1 +FLAGS.SILENT (\\Deleted)")
        command(changer, "i", "EXPUNGE")
        assert watcher.readline() == b"* 1 EXPUNGE\r\n"
        watcher.send(b"DONE\r\n")
        assert watcher.readline() == b"g OK IDLE terminated\r\n"


def test_notify_during_idle_and_refused_events(make_server):
    server = make_server(allow_plaintext_on_loopback=True)
    with imap_raw(server) as watcher, imap_raw(server) as changer:
        assert command(watcher, "a", "NOTIFY SET (personal (MailboxMetadataChange))") == [
            b"a NO [BADEVENT (MessageNew MessageExpunge FlagChange MailboxName SubscriptionChange)] "
            b"Unsupported NOTIFY event\r\n"]
        assert command(watcher, "b", "NOTIFY SET (personal (FlagChange))") == [
            b"b BAD FlagChange needs MessageNew and MessageExpunge\r\n"]
        assert command(watcher, "c", "NOTIFY SET (selected (MailboxName))") == [
            b"c BAD SELECTED takes only message events\r\n"]
        assert command(watcher, "d", "NOTIFY SET (mailboxes (Trash) (MessageNew MessageExpunge FlagChange))") == [
            b"d OK NOTIFY completed\r\n"]
        watcher.send(b"e IDLE\r\n")
        assert watcher.readline() == b"+ idling\r\n"
        append(changer, "f", "Sent")  # not watched
        append(changer, "g", "Trash", "\\Seen")
        assert re.match(STATUS % (b"Trash", 1, 2, 0), watcher.readline())
        command(changer, "h", "SELECT Trash")
        command(changer, "i", "STORE 1 -FLAGS (\\Seen)")
        assert re.match(STATUS % (b"Trash", 1, 2, 1), watcher.readline())
        watcher.send(b"DONE\r\n")
        assert watcher.readline() == b"e OK IDLE terminated\r\n"


def test_flag_changes_left_for_later_still_update_search_contexts(make_server):
    """NOTIFY without FlagChange holds flag changes back; once a command takes them in,
    a search context whose result they change is told."""
    server = make_server(allow_plaintext_on_loopback=True)
    deliver(server, ALICE)
    with imap_raw(server) as watcher, imap_raw(server) as changer:
        command(watcher, "a", "SELECT INBOX")
        command(watcher, "b", "NOTIFY SET (selected (MessageNew MessageExpunge))")
        assert command(watcher, "c", "UID SEARCH RETURN (UPDATE) FLAGGED") == [
            b'* ESEARCH (TAG "c") UID\r\n', b"c OK SEARCH completed\r\n"]
        command(changer, "d", "SELECT INBOX")
        command(changer, "e", "STORE 1 +FLAGS.SILENT (\\Flagged)")
        deliver(server, ALICE)
        # The delivery is pushed; the flag change waits.
        assert watcher.readline() == b"* 2 EXISTS\r\n"
        assert command(watcher, "f", "NOOP") == [
            b"* 2 RECENT\r\n", b"* 1 FETCH (FLAGS (\\Flagged \\Recent))\r\n",
            b'* ESEARCH (TAG "c") UID ADDTO (0 1)\r\n', b"f OK NOOP completed\r\n"]

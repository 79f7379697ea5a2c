; gammu-smsd with the SQL backend on SQLite, handing every received SMS to the
; Privateness SMS hook. Install as /etc/gammu-smsdrc.
;
; The hook's arguments are inbox row IDs (numbers), so no sender name ever reaches
; the shell, and "/" in a sender is only data: the safest backend on gammu 1.42.
; The hook reads the first row's TextDecoded (the whole text of a multipart
; message) and the UDH (how many parts were announced).
;
; Needs Debian's libdbd-sqlite3 and the schema:
;   install -d -o root -m 0750 /var/lib/gammu
;   sqlite3 /var/lib/gammu/smsd.db < /usr/share/doc/gammu-smsd/examples/sqlite.sql

[gammu]
device = /dev/ttyUSB0
connection = at

[smsd]
service = sql
driver = sqlite3
dbdir = /var/lib/gammu/
database = smsd.db
phoneid = sim1
receivefrequency = 5
logfile = syslog
debuglevel = 1
runonreceive = /usr/local/bin/ness-gammu-hook --config /etc/ness/sms.toml receive

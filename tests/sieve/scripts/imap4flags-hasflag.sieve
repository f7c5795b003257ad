require ["imap4flags", "fileinto"];
addflag "\\Seen Work";
if hasflag :is "work" { fileinto "has-work"; }
if hasflag :contains "seen" { fileinto "has-seen"; }
if hasflag "\\Flagged" { fileinto "has-flagged"; }

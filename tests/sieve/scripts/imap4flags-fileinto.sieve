require ["imap4flags", "fileinto"];
if header :contains "subject" "release" { fileinto :flags "\\Flagged $Release" "Dev"; }
addflag "\\Answered";
fileinto "Copy";
keep :flags "\\Deleted";

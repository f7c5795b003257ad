require "fileinto";
if address :matches ["to", "cc", "bcc"] "*@example.org" { fileinto "org"; }
if address :domain :is "cc" "relay.example" { fileinto "route"; }
if address :is "bcc" "heidi@example.com" { fileinto "group-member"; }
if address :localpart :is "cc" "localonly" { fileinto "no-domain"; }

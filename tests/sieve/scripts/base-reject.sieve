require "reject";
if header :contains "subject" "offers" { reject "No advertising, thank you."; }

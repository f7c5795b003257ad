require "vacation";
if not header :contains "subject" "offers" { vacation "I am away."; }

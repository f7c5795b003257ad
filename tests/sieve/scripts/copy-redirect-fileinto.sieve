require ["copy", "fileinto"];
redirect :copy "backup@example.net";
if header :contains "subject" "release" { fileinto :copy "Releases"; }

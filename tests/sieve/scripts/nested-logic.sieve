require ["fileinto", "variables"];
if exists "from" {
  if address :domain :matches "from" "*.net" {
    if header :contains "subject" "re:" { fileinto "net/replies"; stop; }
    fileinto "net/other";
  } elsif address :domain :matches "from" "*.org" {
    set "x" "org";
    fileinto "${x}";
  } else {
    keep;
  }
}

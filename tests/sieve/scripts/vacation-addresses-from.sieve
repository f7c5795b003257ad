require ["vacation", "variables"];
if header :matches "subject" "*" { set "s" "${1}"; }
vacation :days 1 :subject "Re: ${s}" :from "bob@example.org" :addresses ["bob@example.org", "robert@example.org"] "Away.";

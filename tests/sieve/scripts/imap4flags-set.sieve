require ["imap4flags"];
setflag "\\Seen";
addflag ["\\Flagged", "$Label1"];
removeflag "\\Seen";

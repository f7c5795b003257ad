require ["imap4flags", "variables", "fileinto"];
set "myflags" "";
addflag "myflags" "\\Answered";
addflag "myflags" ["one", "two"];
removeflag "myflags" "one";
if hasflag "myflags" "two" { fileinto :flags "${myflags}" "Tagged"; }

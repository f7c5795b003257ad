require ["variables", "fileinto"];
set "name" "MiXed Case";
set :lower "l" "${name}";
set :upper "u" "${name}";
set :lowerfirst "lf" "${name}";
set :upperfirst :lower "ufl" "${name}";
set :length "len" "${name}";
set :quotewildcard "q" "a*b?c\\";
fileinto "${l}|${u}|${lf}|${ufl}|${len}|${q}";

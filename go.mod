module github.com/pltune/pltune

go 1.26

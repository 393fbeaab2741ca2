console.log("long names")

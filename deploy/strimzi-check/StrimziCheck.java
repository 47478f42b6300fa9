// Checks rendered Strimzi resources against Strimzi's own model (io.strimzi:api), run as a single source file:
//   java -cp 'LIBS/*' StrimziCheck.java FILE.yaml...
// Every document whose kind is Kafka, KafkaNodePool, KafkaTopic or KafkaUser is read into its model class
// with Jackson: unknown enum values and unknown polymorphic types (listener, authentication, ACL resource)
// fail, and because Strimzi's classes keep unknown fields in `additionalProperties` instead of failing,
// every object of the graph is walked and any field the model does not know is reported with its path;
// getters the model marks @JsonProperty(required = true) must be set. Prints one line per resource,
// "OK <kind>/<name>" or "ERROR <kind>/<name>: ...", and exits 1 on any error.
import com.fasterxml.jackson.annotation.JsonProperty;
import com.fasterxml.jackson.databind.DeserializationFeature;
import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.MappingIterator;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.dataformat.yaml.YAMLFactory;
import java.io.File;
import java.lang.reflect.Method;
import java.lang.reflect.Modifier;
import java.util.ArrayList;
import java.util.Collection;
import java.util.IdentityHashMap;
import java.util.List;
import java.util.Map;

public class StrimziCheck {
    static final Map<String, Class<?>> KINDS = Map.of(
        "Kafka", io.strimzi.api.kafka.model.kafka.Kafka.class,
        "KafkaNodePool", io.strimzi.api.kafka.model.nodepool.KafkaNodePool.class,
        "KafkaTopic", io.strimzi.api.kafka.model.topic.KafkaTopic.class,
        "KafkaUser", io.strimzi.api.kafka.model.user.KafkaUser.class);

    public static void main(String[] args) throws Exception {
        ObjectMapper mapper = new ObjectMapper(new YAMLFactory())
            .enable(DeserializationFeature.FAIL_ON_UNKNOWN_PROPERTIES)
            .enable(DeserializationFeature.FAIL_ON_NULL_FOR_PRIMITIVES)
            .enable(DeserializationFeature.FAIL_ON_NUMBERS_FOR_ENUMS)
            .enable(DeserializationFeature.FAIL_ON_READING_DUP_TREE_KEY);
        int errors = 0;
        for (String path : args) {
            MappingIterator<JsonNode> docs = mapper.readerFor(JsonNode.class).readValues(new File(path));
            while (docs.hasNext()) {
                JsonNode doc = docs.next();
                if (doc == null || doc.isNull() || !doc.has("kind")) continue;
                String kind = doc.get("kind").asText();
                Class<?> type = KINDS.get(kind);
                if (type == null) continue;
                String name = kind + "/" + doc.path("metadata").path("name").asText("?");
                List<String> problems = new ArrayList<>();
                String apiVersion = doc.path("apiVersion").asText();
                if (!apiVersion.equals("kafka.strimzi.io/v1beta2") && !apiVersion.equals("kafka.strimzi.io/v1")) {
                    problems.add("apiVersion " + apiVersion + " is not one Strimzi serves");
                }
                try {
                    Object resource = mapper.treeToValue(doc, type);
                    walk(resource, "", problems, new IdentityHashMap<>());
                } catch (Exception e) {
                    problems.add(e.getClass().getSimpleName() + ": " + e.getMessage().replace('\n', ' '));
                }
                if (problems.isEmpty()) {
                    System.out.println("OK " + name);
                } else {
                    errors++;
                    System.out.println("ERROR " + name + ": " + String.join("; ", problems));
                }
            }
        }
        System.exit(errors == 0 ? 0 : 1);
    }

    static boolean model(Object o) {
        String pkg = o.getClass().getPackageName();
        return pkg.startsWith("io.strimzi.") || pkg.startsWith("io.fabric8.");
    }

    static void walk(Object o, String path, List<String> problems, IdentityHashMap<Object, Boolean> seen)
            throws Exception {
        if (o == null || seen.containsKey(o)) return;
        if (o instanceof Collection<?> items) {
            int i = 0;
            for (Object item : items) walk(item, path + "[" + i++ + "]", problems, seen);
            return;
        }
        if (o instanceof Map<?, ?> map) {
            for (Map.Entry<?, ?> e : map.entrySet()) walk(e.getValue(), path + "." + e.getKey(), problems, seen);
            return;
        }
        if (!model(o) || o.getClass().isEnum()) return;
        seen.put(o, Boolean.TRUE);
        for (Method m : o.getClass().getMethods()) {
            if (m.getParameterCount() != 0 || Modifier.isStatic(m.getModifiers())) continue;
            String n = m.getName();
            if (!(n.startsWith("get") || n.startsWith("is")) || n.equals("getClass")) continue;
            Object value;
            try {
                value = m.invoke(o);
            } catch (Exception e) {
                continue;
            }
            if (n.equals("getAdditionalProperties")) {
                if (value instanceof Map<?, ?> extra && !extra.isEmpty()) {
                    problems.add("unknown field(s) " + extra.keySet() + " at " + (path.isEmpty() ? "." : path));
                }
                continue;
            }
            JsonProperty prop = m.getAnnotation(JsonProperty.class);
            String field = prop != null && !prop.value().isEmpty() ? prop.value()
                : Character.toLowerCase(n.charAt(n.startsWith("is") ? 2 : 3)) + n.substring(n.startsWith("is") ? 3 : 4);
            if (prop != null && prop.required() && value == null) {
                problems.add("required field missing: " + path + "." + field);
            }
            walk(value, path + "." + field, problems, seen);
        }
    }
}
